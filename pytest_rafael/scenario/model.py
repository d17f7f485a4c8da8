"""Threat scenarios: the :class:`Scenario` and :class:`FaultSpec` value objects, and the
catalog loaded from YAML files (the built-in ``scenarios/`` folder plus user folders).

Loading and validation live in :mod:`pytest_rafael.scenario.loader`; this module holds the
models so that every layer can import them cheaply.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from pytest_rafael.errors import RafaelError

SEVERITIES = ("low", "medium", "high", "critical")
# flood: requests from a child process; the rest act inside the test process.
INPROCESS_KINDS = ("raise", "delay", "disk_full", "dns_failure", "clock_skew")
FAULT_KINDS = ("toxic", "down", "stress", "flood", *INPROCESS_KINDS)
TOXIC_TYPES = (
    "latency",
    "bandwidth",
    "slow_close",
    "timeout",
    "reset_peer",
    "slicer",
    "limit_data",
)
STRESS_TYPES = ("cpu", "memory", "disk")
STREAMS = ("upstream", "downstream")


class ScenarioError(RafaelError, ValueError):
    """A scenario file or marker is invalid. ``str()`` is one line naming file:line and field.

    ``problems`` holds every problem found in the file, one line each (``str()`` is the
    first, with a count of the others), for ``rafael scenarios validate``.
    """

    def __init__(self, message: str, problems: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.problems: tuple[str, ...] = tuple(problems) or (message,)


@dataclass(frozen=True)
class FaultSpec:
    """One fault of a scenario.

    ``kind`` is ``toxic`` (a Toxiproxy toxic on ``target``), ``down`` (``target`` disabled:
    connections refused and dropped) or ``stress`` (``type`` cpu / memory / disk, with
    ``target`` ignored). ``start_s`` is the offset into the test call at which the fault
    is applied; ``duration_s`` ``None`` means until the call ends; ``every_s`` repeats
    the fault each period.
    """

    kind: str
    target: str = "*"
    type: str | None = None
    stream: str = "downstream"
    toxicity: float = 1.0
    attributes: Mapping[str, Any] = field(default_factory=dict)
    start_s: float = 0.0
    duration_s: float | None = None
    # A fault that comes and goes: active for duration_s at start_s, start_s + every_s,
    # ... until the call ends. Every request in a window sees it, pooled or not.
    every_s: float | None = None
    source: str = field(default="<inline>", compare=False)  # "file.yaml:12", for errors

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        # Hypothesis prints a state machine's drawn fault ("Draw 1 (fault): ...") field by
        # field, ten lines of them; the one line of a stored failure says it better.
        from pytest_rafael.scenario.schedule_model import describe_fault

        printer.text(describe_fault(self).removesuffix(", for the whole block"))

    @property
    def probabilistic(self) -> bool:
        """Does the fault hit by chance (toxicity below 1, jitter, random slicing)? One
        measurement then says little, so the shipped genome is measured several times."""
        if self.kind in ("toxic", "raise", "delay") and self.toxicity < 1.0:
            return True
        attrs = self.attributes
        if self.type == "latency" and _positive(attrs.get("jitter")):
            return True
        return self.type == "slicer" and bool(_positive(attrs.get("size_variation")))

    @property
    def aims_at_proxies(self) -> bool:
        """Does the fault act on ``chaos_proxy`` proxies (by name or ``*``)?"""
        if self.kind == "flood":
            return not is_address(self.target)
        return self.kind in ("toxic", "down")

    def retarget(self, mapping: Mapping[str, str]) -> FaultSpec:
        """The same fault aimed at a renamed proxy or function (the marker's ``targets=``)."""
        return replace(self, target=mapping.get(self.target, self.target))


STEP_ACTIONS = ("rule", "inject", "revert")


@dataclass(frozen=True)
class Step:
    """One step of a stateful failure's replay, in order: a rule of the state machine
    with its arguments, or the scenario's fault number ``fault`` put in place
    (``inject``) or taken away (``revert``)."""

    action: str
    rule: str = ""
    arguments: Mapping[str, Any] = field(default_factory=dict)
    fault: int = -1
    # When the step began in the recorded run, from the machine's start: a replay waits
    # for it, so a step never comes sooner after a fault than it did (a late reply that
    # arrived before the next operation still does).
    at_s: float | None = None

    def describe(self, faults: Sequence[FaultSpec]) -> str:
        if self.action == "rule":
            shown = ", ".join(f"{key}={value!r}" for key, value in self.arguments.items())
            return f"{self.rule}({shown})"
        fault = faults[self.fault]
        return f"{self.action} {fault.type or fault.kind} on {fault.target!r}"


@dataclass(frozen=True)
class Scenario:
    """A threat scenario. With ``steps`` (a stateful failure turned into a scenario) the
    faults carry no timing: a ``ChaosStateMachine`` replays the steps, operations and
    faults in their order."""

    name: str
    description: str
    severity: str
    faults: tuple[FaultSpec, ...]
    source: str = field(default="<inline>", compare=False)  # the YAML file it came from
    steps: tuple[Step, ...] = ()

    @property
    def targets(self) -> frozenset[str]:
        """Proxy names the network faults of this scenario need (``*`` excluded)."""
        return frozenset(f.target for f in self.faults if f.aims_at_proxies and f.target != "*")

    @property
    def probabilistic(self) -> bool:
        return any(f.probabilistic for f in self.faults)

    def retarget(self, mapping: Mapping[str, str]) -> Scenario:
        return replace(self, faults=tuple(f.retarget(mapping) for f in self.faults))


def _positive(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0


def is_address(target: str) -> bool:
    """Is a flood ``target`` a URL or ``host:port`` (an IP or ``localhost``) rather than
    a ``chaos_proxy`` name?"""
    if "://" in target:
        return True
    host, sep, port = target.rpartition(":")
    host = host.strip("[]")
    if not sep or not port.isdigit():
        return False
    if host == "localhost":
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
