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
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from pytest_rafael.faults.injector import FaultInjector
from pytest_rafael.faults.network import ProxyHandle, ToxiproxyControl
from pytest_rafael.scenario import pending as schedule_pending
from pytest_rafael.scenario.failures import (
    DEFAULT_FAILURES_DIR,
    FAILURES_ENV,
    INDEX_NAME,
    FailureRecord,
    load_failures,
    record_failure,
)
from pytest_rafael.scenario.model import Scenario
from pytest_rafael.scenario.schedule_model import (
    FaultSchedule,
    describe_fault,
    fault_from_dict,
    fault_to_dict,
)

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


# --------------------------------------------------------------------------- faults as data


# --------------------------------------------------------------------------- the schedule


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
        from pytest_rafael.faults.stress_limits import StressLimits

        stress_limits = StressLimits()
    final = _final_example()
    nodeid = _current_nodeid()
    if final:
        _note(schedule.describe(failing=True))
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
