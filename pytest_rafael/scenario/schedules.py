"""Fault schedules: an ordered list of faults on named targets, as drawn by Hypothesis.

A :class:`FaultSchedule` is the value :func:`pytest_rafael.scenario.strategies.fault_schedules`
produces. It is a scenario without a name: :meth:`FaultSchedule.to_scenario` turns it into
one (so it can be written as a scenario file and replayed), :meth:`FaultSchedule.describe`
prints it for a human (Hypothesis shows it in the falsifying example).

:func:`apply_schedule` applies a schedule around a block with the plugin's
:class:`~pytest_rafael.faults.injector.FaultInjector`, so each Hypothesis example gets
exactly its own faults and every one of them is reverted before the next example starts.
When Hypothesis replays the minimal failing example, the schedule is stored with
:func:`record_failure` as a scenario YAML under ``.rafael/failures/`` plus an entry of a
JSON index that the report reads (:func:`load_failures`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from pytest_rafael.common.atomic import atomic_write
from pytest_rafael.faults.injector import FaultInjector
from pytest_rafael.faults.network import ProxyHandle, ToxiproxyControl
from pytest_rafael.scenario import pending as schedule_pending
from pytest_rafael.scenario.model import FaultSpec, Scenario
from pytest_rafael.settings import command_value, option

__all__ = [
    "DEFAULT_FAILURES_DIR",
    "FAILURES_ENV",
    "INDEX_NAME",
    "FailureRecord",
    "FaultSchedule",
    "apply_schedule",
    "describe_fault",
    "fault_from_dict",
    "fault_to_dict",
    "load_failures",
    "record_failure",
    "record_pending_failure",
    "take_pending",
]

DEFAULT_FAILURES_DIR = Path(".rafael/failures")  # beside the default store
FAILURES_ENV = str(option("failures_dir").env)  # from the option table
INDEX_NAME = schedule_pending.INDEX_NAME
INDEX_SCHEMA = "rafael.hypothesis/1"

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


# --------------------------------------------------------------------------- faults as data


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
    return loads(text, source).faults


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
    if attrs:
        text += f": {attrs}"
    return f"{text}, {_when(fault)}"


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


# --------------------------------------------------------------------------- the schedule


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

    def describe(self) -> str:
        """Several lines, numbered in application order, for failure output."""
        if not self.faults:
            return "Fault schedule: no faults (the code fails without any chaos)"
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


# --------------------------------------------------------------------------- applying


def _proxy_map(
    proxies: Mapping[str, ProxyHandle] | Iterable[ProxyHandle],
) -> dict[str, ProxyHandle]:
    if isinstance(proxies, Mapping):
        return dict(proxies)
    return {p.name: p for p in proxies}


def _current_nodeid() -> str:
    # Set by pytest for the running test: "path::name (call)". Public and stable.
    current = os.environ.get("PYTEST_CURRENT_TEST", "")
    return current.rsplit(" (", 1)[0] if current else "<outside pytest>"


def _final_example() -> bool:
    """Whether Hypothesis is replaying the example it will report (the minimal failing
    one, or an explicit ``@example``). ``False`` outside a Hypothesis test."""
    try:
        from hypothesis.control import current_build_context
        from hypothesis.errors import InvalidArgument
    except ImportError:  # pragma: no cover - hypothesis is a dependency
        return False
    try:
        return bool(getattr(current_build_context(), "is_final", False))
    except InvalidArgument:
        return False


def _note(text: str) -> None:
    try:
        from hypothesis import note
        from hypothesis.errors import InvalidArgument
    except ImportError:  # pragma: no cover
        return
    with contextlib.suppress(InvalidArgument):  # outside a Hypothesis test: nothing to do
        note(text)


def take_pending(nodeid: str) -> FaultSchedule | None:
    """The schedule of the last example Hypothesis reported for ``nodeid`` (set by
    :func:`apply_schedule`), removed from the pending table."""
    schedule: FaultSchedule | None = schedule_pending.take(nodeid)
    return schedule


def record_pending_failure(nodeid: str, path: Path | None = None) -> FailureRecord | None:
    """For the plugin: call when a test's call phase failed. Stores the schedule of the
    example Hypothesis reported (if the test applied one) and returns its record."""
    schedule = take_pending(nodeid)
    if schedule is None:
        return None
    return record_failure(schedule, nodeid, path)


@contextlib.contextmanager
def apply_schedule(
    schedule: FaultSchedule,
    proxies: Mapping[str, ProxyHandle] | Iterable[ProxyHandle],
    control: ToxiproxyControl | None,
    stress_limits: Any = None,
    *,
    workdir: Path | None = None,
    failures_dir: Path | None = None,
    name: str = "hypothesis",
) -> Iterator[FaultInjector]:
    """Apply ``schedule`` for the duration of the ``with`` block; revert every fault on
    exit, whatever happens in the block (the next Hypothesis example starts clean).

    ``proxies`` are the test's chaos proxies (a name -> handle mapping, or handles);
    ``control`` the Toxiproxy control (``toxiproxy.control``), needed only for network
    faults; ``stress_limits`` a :class:`~pytest_rafael.faults.stress.StressLimits`
    (default limits when ``None``). Faults with a ``start`` are applied on time by the
    injector's timer; a ``duration`` ends them early.

    Inside a Hypothesis test the schedule is noted (Hypothesis prints it with the
    falsifying example) and, when Hypothesis replays the example it reports and the block
    raises, stored with :func:`record_failure` under ``failures_dir`` (default
    ``$RAFAEL_FAILURES_DIR``, else ``failures`` beside the store, as under pytest).
    """
    if not isinstance(schedule, FaultSchedule):
        raise TypeError(f"apply_schedule: expected a FaultSchedule, got {type(schedule).__name__}")
    if stress_limits is None:
        from pytest_rafael.faults.stress import StressLimits

        stress_limits = StressLimits()
    final = _final_example()
    nodeid = _current_nodeid()
    if final:
        _note(schedule.describe())
        schedule_pending.put(nodeid, schedule)
    # A stand-in scenario only carries the faults to the injector; an empty schedule is
    # a valid example (the baseline: no fault at all), so it gets no scenario validation.
    scenario = Scenario(name, "fault schedule drawn by Hypothesis", "medium", schedule.faults)
    injector = FaultInjector(scenario, _proxy_map(proxies), control, stress_limits, workdir=workdir)
    from pytest_rafael.faults.injector import resolve_targets

    resolve_targets(scenario, injector.proxies)
    injector.start()
    try:
        yield injector
    except BaseException:
        if final:
            with contextlib.suppress(Exception):  # storing must never mask the failure
                record = record_failure(schedule, nodeid, failures_dir)
                _note(
                    f"Stored as {record.yaml_path or record.index_path}; replay with "
                    "`rafael scenarios from-failure --latest`"
                )
        raise
    finally:
        injector.stop()


# --------------------------------------------------------------------------- storing


@dataclass(frozen=True)
class FailureRecord:
    """Where a failing schedule was stored."""

    nodeid: str
    schedule: FaultSchedule
    index_path: Path
    yaml_path: Path | None  # None for an empty schedule (no scenario form)
    yaml: str | None
    recorded_at: str
    steps: tuple[str, ...] = ()  # a stateful failure: operations and faults, in order

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "nodeid": self.nodeid,
            "schedule": self.schedule.to_dicts(),
            "yaml": self.yaml,
            "file": self.yaml_path.name if self.yaml_path else None,
            "description": self.schedule.describe(),
            "recorded_at": self.recorded_at,
        }
        if self.steps:
            data["steps"] = list(self.steps)
        return data


def failures_dir(path: Path | str | None = None) -> Path:
    if path is not None:
        return Path(path)
    # The option table's folder, as the plugin resolves it: $RAFAEL_FAILURES_DIR, the
    # ini's rafael_failures_dir, else "failures" beside the store ($RAFAEL_STORE, ...).
    folder: Path = command_value("failures_dir")
    return folder


def scenario_name_for(nodeid: str) -> str:
    """A valid scenario name (``[a-z0-9_]+``) for a test id, unique by a short hash."""
    base = nodeid.rsplit("::", 1)[-1] if "::" in nodeid else nodeid
    slug = re.sub(r"[^a-z0-9]+", "_", base.lower()).strip("_")[:48] or "test"
    digest = hashlib.sha256(nodeid.encode()).hexdigest()[:8]
    return f"failure_{slug}_{digest}"


def record_failure(
    schedule: FaultSchedule,
    nodeid: str,
    path: Path | str | None = None,
    steps: Sequence[str] = (),
) -> FailureRecord:
    """Store the (minimal) failing ``schedule`` of test ``nodeid``: a replayable scenario
    file ``<path>/<name>.yaml`` and an entry (replacing any older one for the same test)
    in ``<path>/index.json``. Safe with several processes (pytest-xdist workers).
    ``steps`` (a stateful failure's operations and faults, in order) go into the entry
    and the scenario's description."""
    from pytest_rafael.scenario.loader import dump_scenario

    folder = failures_dir(path)
    folder.mkdir(parents=True, exist_ok=True)
    recorded_at = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
    name = scenario_name_for(nodeid)
    yaml_text: str | None = None
    yaml_path: Path | None = None
    if schedule.faults:
        text = (
            f"Minimal failing fault schedule of {nodeid}, found and shrunk by Hypothesis "
            f"({schedule.summary()})."
        )
        if steps:
            text += " Steps: " + "; ".join(steps)
        scenario = schedule.to_scenario(name, text)
        yaml_text = dump_scenario(scenario)
        yaml_path = folder / f"{name}.yaml"
        atomic_write(yaml_path, yaml_text)
    record = FailureRecord(
        nodeid, schedule, folder / INDEX_NAME, yaml_path, yaml_text, recorded_at, tuple(steps)
    )
    with _index_lock(folder):
        index = _read_index(folder / INDEX_NAME)
        entries = [e for e in index["failures"] if e.get("nodeid") != nodeid]
        entries.append(record.to_dict())
        atomic_write(
            folder / INDEX_NAME,
            json.dumps({"schema": INDEX_SCHEMA, "failures": entries}, indent=2) + "\n",
        )
    return record


def load_failures(path: Path | str | None = None, since: str | None = None) -> dict[str, Any]:
    """The ``hypothesis`` section of results.json: ``{"failures": [{nodeid, schedule,
    yaml, file, description, recorded_at}, ...]}``, oldest first. ``since`` (an ISO time,
    e.g. the run's ``started_at``) keeps only failures recorded by this run. A missing or
    unreadable index gives no failures."""
    index = _read_index(failures_dir(path) / INDEX_NAME)
    entries = index["failures"]
    if since is not None:
        cutoff = _parse_time(since)
        entries = [e for e in entries if _parse_time(str(e.get("recorded_at", ""))) >= cutoff]
    return {"failures": sorted(entries, key=lambda e: str(e.get("recorded_at", "")))}


def _parse_time(text: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return datetime.min.replace(tzinfo=timezone.utc)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _read_index(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {"schema": INDEX_SCHEMA, "failures": []}
    failures = data.get("failures") if isinstance(data, dict) else None
    if not isinstance(failures, list):
        failures = []
    return {"schema": INDEX_SCHEMA, "failures": [f for f in failures if isinstance(f, dict)]}


@contextlib.contextmanager
def _index_lock(folder: Path) -> Iterator[None]:
    """An exclusive lock on the index across processes (POSIX flock; elsewhere only
    within this process)."""
    with _pending_lock_for_files, open(folder / ".index.lock", "a+b") as handle:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows: in-process lock only
            yield
            return
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


_pending_lock_for_files = threading.Lock()
