"""The ``chaos`` marker: its registered signature and the validation of its arguments."""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest

from pytest_rafael.common.values import MAX_ITERATIONS
from pytest_rafael.errors import RafaelError

if TYPE_CHECKING:
    from pytest_rafael.scenario.model import Scenario

SIGNATURE = (
    "chaos(*scenario_names, iterations=None, module=None, min_fitness=None, targets=None): "
    "run this test under the named threat scenarios when --rafael-chaos is given; "
    "iterations per scenario, the genome module (or tuple of modules) it evolves, "
    "its own fitness gate, and a renaming of scenario targets to this test's chaos_proxy names"
)
_KWARGS = ("iterations", "module", "min_fitness", "targets")
_MODULE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")


class MarkerError(RafaelError, ValueError):
    """Bad marker arguments; one line naming the test."""


@dataclass(frozen=True)
class ChaosSpec:
    scenarios: tuple[str, ...]
    iterations: int | None = None
    modules: tuple[str, ...] = ()  # module= as given: one name, or several evolved together
    min_fitness: float | None = None
    targets: Mapping[str, str] = field(default_factory=dict)

    @property
    def module(self) -> str | None:
        """The first module (the only one, for most tests); None when none is named."""
        return self.modules[0] if self.modules else None


def unknown_scenario(name: str, known: Iterable[str]) -> str:
    """ "unknown scenario 'x'; did you mean 'y'? valid: ..." (the hint only when one is close)."""
    names = sorted(known)
    hint = difflib.get_close_matches(name, names, n=1)
    suggestion = f"did you mean {hint[0]!r}? " if hint else ""
    return f"unknown scenario {name!r}; {suggestion}valid: {', '.join(names)}"


def parse(mark: pytest.Mark, where: str, known: Mapping[str, Any]) -> ChaosSpec:
    """Validate one ``chaos`` mark against the scenario catalog ``known``."""

    def fail(problem: str) -> MarkerError:
        return MarkerError(f"{where}: @pytest.mark.chaos: {problem}")

    unknown_kwargs = sorted(set(mark.kwargs) - set(_KWARGS))
    if unknown_kwargs:
        raise fail(f"unknown argument(s) {', '.join(unknown_kwargs)}; valid: {', '.join(_KWARGS)}")
    if not mark.args:
        raise fail(f"name at least one scenario; valid: {', '.join(sorted(known))}")
    names: list[str] = []
    for arg in mark.args:
        if not isinstance(arg, str):
            raise fail(f"scenario names are strings, got {arg!r}")
        if arg not in known:
            raise fail(unknown_scenario(arg, known))
        if arg in names:
            raise fail(f"scenario {arg!r} is named twice")
        names.append(arg)

    iterations = mark.kwargs.get("iterations")
    if iterations is not None and (
        isinstance(iterations, bool)
        or not isinstance(iterations, int)
        or not 1 <= iterations <= MAX_ITERATIONS
    ):
        raise fail(
            f"iterations= must be a positive integer up to {MAX_ITERATIONS}, got {iterations!r}"
        )
    modules = _modules(mark.kwargs.get("module"), fail)
    min_fitness = mark.kwargs.get("min_fitness")
    if min_fitness is not None:
        if (
            isinstance(min_fitness, bool)
            or not isinstance(min_fitness, (int, float))
            or not (0.0 <= float(min_fitness) <= 1.0)
        ):
            raise fail(f"min_fitness= must be a number between 0 and 1, got {min_fitness!r}")
        min_fitness = float(min_fitness)
    targets = mark.kwargs.get("targets") or {}
    if not isinstance(targets, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in targets.items()
    ):
        raise fail(f"targets= must map scenario target names to proxy names, got {targets!r}")
    aimed = {f.target for name in names for f in getattr(known[name], "faults", ())}
    unused = sorted(set(targets) - aimed)
    if unused:
        raise fail(
            f"targets= renames {', '.join(map(repr, unused))}, but no fault of "
            f"{', '.join(names)} aims at it; their targets: "
            f"{', '.join(sorted(aimed)) or 'none'}"
        )
    return ChaosSpec(tuple(names), iterations, modules, min_fitness, dict(targets))


def _modules(given: object, fail: Callable[[str], MarkerError]) -> tuple[str, ...]:
    """``module=`` as a tuple: None, one name, or a tuple/list of distinct names."""
    if given is None:
        return ()
    names = [given] if isinstance(given, str) else given
    if not isinstance(names, (tuple, list)) or not names:
        raise fail(
            f"module= must be a name like 'payments' or a tuple of names like "
            f"('orders_api', 'orders_repo'), got {given!r}"
        )
    for name in names:
        if not isinstance(name, str) or not _MODULE_NAME.match(name):
            raise fail(f"module= must be a name like 'payments', got {name!r}")
    if len(set(names)) != len(names):
        raise fail(f"module= names a module twice: {given!r}")
    return tuple(names)


def check_in_process(catalog: Mapping[str, Scenario], spec: ChaosSpec) -> None:
    """In-process faults name functions of the code under test: an unknown one is a
    collection error at the scenario's file and line, not a surprise mid-run."""
    faults = [
        f.retarget(spec.targets)
        for name in spec.scenarios
        for f in catalog[name].faults
        if f.kind in ("raise", "delay")
    ]
    if faults:
        from pytest_rafael.faults.inprocess import check

        check(faults)


def in_selection(names: Iterable[str], chosen: Iterable[str]) -> tuple[str, ...]:
    """The ``names`` a run's ``--rafael-scenario`` selection includes: the named ones (all
    without a name), minus those named with a leading '-' (``-network_latency``)."""
    picked = tuple(chosen)
    include = {n for n in picked if not n.startswith("-")}
    exclude = {n[1:] for n in picked if n.startswith("-")}
    return tuple(n for n in names if (not include or n in include) and n not in exclude)
