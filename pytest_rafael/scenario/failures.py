"""Shrunk failures on disk: one YAML file per failing test and an index,
read back by ``rafael scenarios from-failure``."""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pytest_rafael.common.atomic import atomic_write
from pytest_rafael.scenario import pending as schedule_pending
from pytest_rafael.scenario.model import FaultSpec, Scenario, Step
from pytest_rafael.scenario.schedule_model import FaultSchedule
from pytest_rafael.settings import command_value, option

DEFAULT_FAILURES_DIR = Path(".rafael/failures")  # beside the default store

FAILURES_ENV = str(option("failures_dir").env)  # from the option table

INDEX_NAME = schedule_pending.INDEX_NAME

INDEX_SCHEMA = "rafael.hypothesis/1"


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
            "description": self.schedule.describe(failing=True),
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
    replay: tuple[Sequence[FaultSpec], Sequence[Step]] | None = None,
) -> FailureRecord:
    """Store the (minimal) failing ``schedule`` of test ``nodeid``: a replayable scenario
    file ``<path>/<name>.yaml`` and an entry (replacing any older one for the same test)
    in ``<path>/index.json``. Safe with several processes (pytest-xdist workers).
    ``steps`` (a stateful failure's operations and faults, in order) go into the entry
    and the scenario's description; with ``replay`` (its faults and steps) the scenario
    replays them step by step rather than timing the faults."""
    from pytest_rafael.scenario.dump import dump_scenario

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
        if replay is not None:
            scenario = _stepped(scenario, *replay)
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


def _stepped(scenario: Scenario, faults: Sequence[FaultSpec], steps: Sequence[Step]) -> Scenario:
    """``scenario`` as a replay of ``steps`` when a file can carry them: the timed
    faults stay when a rule's argument is not plain data (an object, a Hypothesis draw)."""
    from pytest_rafael.scenario.steps import plain

    for step in steps:
        for key, value in step.arguments.items():
            if not plain(value):
                note = (
                    f" Not replayable step by step: {step.rule}'s argument {key!r} is a "
                    f"{type(value).__name__}, which a scenario file cannot carry."
                )
                return replace(scenario, description=scenario.description + note)
    return replace(scenario, faults=tuple(faults), steps=tuple(steps))


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
