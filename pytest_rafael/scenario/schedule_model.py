"""A fault schedule: the faults one Hypothesis example applies, their
timing, and their dictionary form (failure index, ``from-failure``)."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import yaml

from pytest_rafael.scenario.model import FaultSpec, Scenario, ScenarioError

# Units of toxic and stressor attributes (the same as scenario files and Toxiproxy).
_UNITS: dict[str, dict[str, str]] = {
    "latency": {"latency": "ms", "jitter": "ms"},
    "bandwidth": {"rate": "KB/s"},
    "slow_close": {"delay": "ms"},
    "timeout": {"timeout": "ms"},
    "reset_peer": {"timeout": "ms"},
    "slicer": {"average_size": "B", "size_variation": "B", "delay": "us"},
    "limit_data": {"bytes": "B"},
    "cpu": {"percent": "%", "period_ms": "ms"},
    "memory": {"mb": "MB"},
    "disk": {"mb": "MB", "block_kb": "KB"},
}


def _seconds(value: float) -> str:
    return f"{int(value)}s" if float(value).is_integer() else f"{float(value)!r}s"


def fault_to_dict(fault: FaultSpec) -> dict[str, Any]:
    """The fault as JSON/YAML data with the keys of a scenario file (``start``/``duration``
    as text like ``"0.25s"``; keys a fault kind does not use are left out)."""
    data: dict[str, Any] = {"kind": fault.kind}
    if fault.kind not in ("toxic", "down", "stress"):  # flood, in-process, a plugin's kind
        if fault.kind not in ("disk_full", "dns_failure", "clock_skew"):  # no target
            data["target"] = fault.target
        if fault.kind in ("raise", "delay"):
            data["toxicity"] = float(fault.toxicity)
        if fault.type is not None:
            data["type"] = fault.type
        if fault.attributes:
            data["attributes"] = dict(fault.attributes)
    if fault.kind in ("toxic", "down"):
        data["target"] = fault.target
    if fault.kind in ("toxic", "stress"):
        data["type"] = fault.type
    if fault.kind == "toxic":
        data["stream"] = fault.stream
        data["toxicity"] = float(fault.toxicity)
    if fault.kind in ("toxic", "stress"):
        data["attributes"] = dict(fault.attributes)
    if fault.start_s:
        data["start"] = _seconds(fault.start_s)
    if fault.duration_s is not None:
        data["duration"] = _seconds(fault.duration_s)
    return data


def fault_from_dict(data: Mapping[str, Any], source: str = "<schedule>") -> FaultSpec:
    """Validate one fault dict (as written by :func:`fault_to_dict` or in a scenario
    file) with the scenario loader; raises ScenarioError naming ``source``."""
    return _validated([dict(data)], source)[0]


def _validated(faults: list[dict[str, Any]], source: str) -> tuple[FaultSpec, ...]:
    from pytest_rafael.scenario.loader import loads

    text = yaml.safe_dump(
        {
            "name": "schedule",
            "description": "a fault schedule",
            "severity": "low",
            "faults": faults,
        },
        sort_keys=False,
    )
    try:
        return loads(text, source).faults
    except ScenarioError as exc:
        # Its line numbers count lines of the YAML made above, not of the caller's data:
        # the field path ("field 'faults[0].type'") is what locates a problem there.
        prefix = re.compile(rf"^{re.escape(source)}:\d+: ", re.M)
        problems = [prefix.sub(f"{source}: ", p) for p in exc.problems]
        raise ScenarioError(prefix.sub(f"{source}: ", str(exc)), problems) from None


def describe_fault(fault: FaultSpec) -> str:
    """One line, e.g. ``latency on 'db' (downstream): latency=250ms``."""
    units = _UNITS.get(str(fault.type), {})
    attrs = ", ".join(
        f"{key}={value}{units.get(key, '')}" for key, value in fault.attributes.items()
    )
    if fault.kind == "toxic":
        text = f"{fault.type} on {_target(fault.target)} ({fault.stream})"
        if fault.toxicity < 1.0:
            text += f" with toxicity {fault.toxicity:g}"
    elif fault.kind == "down":
        text = f"{_target(fault.target)} down (connections refused and dropped)"
    elif fault.kind == "stress":
        text = f"{fault.type} stress"
    else:
        text = f"{fault.kind} {fault.type or ''} on {_target(fault.target)}".rstrip()
    held = _AT_ZERO.get(str(fault.type)) if fault.kind == "toxic" else None
    if held and not fault.attributes.get("timeout"):
        # Left out at Toxiproxy's default (0), where it means the most, not the least.
        attrs = ", ".join(a for a in (attrs, held) if a)
    if attrs:
        text += f": {attrs}"
    return f"{text}, {_when(fault)}"


_AT_ZERO = {
    "timeout": "timeout=0ms (holds the data, never closes)",
    "reset_peer": "timeout=0ms (resets at once)",
}


def _when(fault: FaultSpec) -> str:
    if fault.start_s and fault.duration_s is not None:
        return f"from {_seconds(fault.start_s)} for {_seconds(fault.duration_s)}"
    if fault.start_s:
        return f"from {_seconds(fault.start_s)} on"
    if fault.duration_s is not None:
        return f"for the first {_seconds(fault.duration_s)}"
    return "for the whole block"


def _target(target: str) -> str:
    return "every proxy" if target == "*" else repr(target)


@dataclass(frozen=True)
class FaultSchedule:
    """Faults in the order they are applied (faults with equal start times are applied in
    this order). Immutable; an empty schedule means "no fault at all"."""

    faults: tuple[FaultSpec, ...] = field(default=())

    def __post_init__(self) -> None:
        faults = tuple(self.faults)
        for fault in faults:
            if not isinstance(fault, FaultSpec):
                raise TypeError(f"FaultSchedule: expected FaultSpec items, got {fault!r}")
        object.__setattr__(self, "faults", faults)

    # -- construction ---------------------------------------------------------------

    @classmethod
    def of(cls, *faults: FaultSpec) -> FaultSchedule:
        return cls(tuple(faults))

    @classmethod
    def from_scenario(cls, scenario: Scenario) -> FaultSchedule:
        return cls(scenario.faults)

    @classmethod
    def from_dicts(
        cls, data: Sequence[Mapping[str, Any]], source: str = "<schedule>"
    ) -> FaultSchedule:
        """A schedule from fault dicts (the ``schedule`` list of the failure index),
        validated like a scenario file."""
        if not data:
            return cls(())
        return cls(_validated([dict(d) for d in data], source))

    # -- views ----------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.faults)

    def __iter__(self) -> Iterator[FaultSpec]:
        return iter(self.faults)

    def __bool__(self) -> bool:
        return bool(self.faults)

    @property
    def targets(self) -> frozenset[str]:
        """The proxy names the network faults need (``*`` excluded)."""
        return frozenset(f.target for f in self.faults if f.aims_at_proxies and f.target != "*")

    @property
    def needs_network(self) -> bool:
        return any(f.aims_at_proxies for f in self.faults)

    def to_dicts(self) -> list[dict[str, Any]]:
        return [fault_to_dict(f) for f in self.faults]

    def to_scenario(
        self,
        name: str = "hypothesis_failure",
        description: str | None = None,
        severity: str = "high",
    ) -> Scenario:
        """The schedule as a :class:`Scenario` (what the injector runs and what a scenario
        file holds). An empty schedule has no scenario form: a scenario needs a fault."""
        if not self.faults:
            raise ValueError(
                f"scenario {name!r}: an empty fault schedule cannot be a scenario "
                "(the test fails without any fault)"
            )
        text = description or f"Minimal fault schedule found by Hypothesis: {self.summary()}"
        return Scenario(name, text, severity, tuple(replace(f) for f in self.faults))

    def summary(self) -> str:
        """One line: ``latency on 'db' + limit_data on 'db'``."""
        if not self.faults:
            return "no faults"
        return " + ".join(
            f"{f.type} on {_target(f.target)}"
            if f.kind == "toxic"
            else describe_fault(f).split(",")[0]
            for f in self.faults
        )

    def describe(self, failing: bool = False) -> str:
        """Several lines, numbered in application order. ``failing``: the schedule of a
        failure (an empty one then says that the code fails without any fault)."""
        if not self.faults:
            return "Fault schedule: no faults" + (
                " (the code fails without any chaos)" if failing else ""
            )
        count = f"{len(self.faults)} fault{'s' if len(self.faults) != 1 else ''}"
        lines = [f"Fault schedule ({count}):"]
        lines += [f"  {i}. {describe_fault(f)}" for i, f in enumerate(self.faults, 1)]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.describe()

    def __repr__(self) -> str:
        inner = "; ".join(describe_fault(f) for f in self.faults)
        return f"FaultSchedule<{len(self.faults)}: {inner}>" if inner else "FaultSchedule<0>"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        # Hypothesis prints falsifying examples with an IPython-style pretty printer:
        # show one fault per line instead of nested dataclass reprs.
        if cycle or not self.faults:
            printer.text(repr(self))
            return
        printer.text("FaultSchedule<")
        for i, fault in enumerate(self.faults, 1):
            printer.break_()
            printer.text(f"    {i}. {describe_fault(fault)}")
        printer.break_()
        printer.text(">")
