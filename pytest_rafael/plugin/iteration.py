"""Per-test state of one chaos iteration, kept in the item's stash.

The plugin fills it in across the setup, call and teardown phases; the fixtures read and
add to it (proxies created, metrics recorded). It is mutable working state, not a value
object: the frozen :class:`~pytest_rafael.results.IterationResult` is built from it once
the iteration is over.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import pytest

from pytest_rafael.faults.network import ProxyHandle
from pytest_rafael.results import FaultRecord

if TYPE_CHECKING:
    from pytest_rafael.plugin.marker import ChaosSpec
    from pytest_rafael.scenario.model import Scenario


REFERENCE = -1  # the index of the no-fault reference run of a (test, scenario) pair


@dataclass(frozen=True)
class ChaosCase:
    """The hidden parameter of a chaos item: which scenario, which iteration. Index
    :data:`REFERENCE` is the pair's run without faults, whose duration the speed term of
    the fitness compares the iterations with."""

    scenario: str
    index: int
    iterations: int

    @property
    def reference(self) -> bool:
        return self.index == REFERENCE

    @property
    def id(self) -> str:
        return f"{self.scenario}-nofault" if self.reference else f"{self.scenario}-it{self.index}"

    def __repr__(self) -> str:  # shown by pytest in some failure headers
        return self.id


@dataclass
class IterationState:
    spec: ChaosSpec | None = None
    case: ChaosCase | None = None
    scenario: Scenario | None = None
    base_nodeid: str = ""
    genome: Any = None  # pytest_rafael.genome.Genome | None
    # Every module's genome in force (module= names several), and the one module running
    # a candidate in this iteration (None: all run what ships).
    genomes: dict[str, Any] = field(default_factory=dict)
    varied: str | None = None
    proxies: dict[str, ProxyHandle] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    outcome: str | None = None
    error: str | None = None
    duration_s: float = 0.0
    faults: tuple[FaultRecord, ...] = ()
    fault_window: tuple[float, float] | None = None
    runtime: dict[str, Any] = field(default_factory=dict)
    measured: bool = False  # the call ran under the scenario's faults
    injector: Any = None  # the FaultInjector while the test call runs
    cleanup: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    @property
    def active(self) -> bool:
        return self.case is not None

    def view(self) -> IterationView:
        """What hooks may see of this iteration, read-only."""
        case = self.case
        return IterationView(
            nodeid=self.base_nodeid,
            scenario=self.scenario,
            iteration=case.index if case is not None else None,
            iterations=case.iterations if case is not None else None,
            genome=self.genome,
            proxies=MappingProxyType(dict(self.proxies)),
        )


@dataclass(frozen=True)
class IterationView:
    """A chaos iteration as hooks see it (``pytest_rafael_apply_fault``'s ``context``):
    a frozen snapshot, so a plugin cannot change the plugin's working state."""

    nodeid: str  # the test's id without the rafael parameter
    scenario: Scenario | None
    iteration: int | None  # 0-based; -1 for the pair's reference run without faults
    iterations: int | None
    genome: Any  # the pytest_rafael.genome.Genome under test, or None
    proxies: Mapping[str, ProxyHandle]  # the test's chaos proxies by name


ITERATION = pytest.StashKey[IterationState]()


def state_of(item: pytest.Item) -> IterationState:
    """The item's iteration state, created on first use (also for runs without chaos)."""
    state = item.stash.get(ITERATION, None)
    if state is None:
        state = item.stash[ITERATION] = IterationState()
    return state


def base_nodeid(nodeid: str, case: ChaosCase) -> str:
    """The test's node id without the rafael parameter: the (test, scenario) key's half."""
    token = case.id
    for old, new in (
        (f"[{token}]", ""),
        (f"-{token}]", "]"),
        (f"[{token}-", "["),
        (f"-{token}-", "-"),
    ):
        if old in nodeid:
            return nodeid.replace(old, new, 1)
    return nodeid


def one_line(excinfo: pytest.ExceptionInfo[BaseException]) -> str:
    message = str(excinfo.value).strip().splitlines()
    return f"{excinfo.typename}: {message[0]}" if message else excinfo.typename
