"""Moved; this module keeps the old import path working. The code lives in

- :mod:`pytest_rafael.scenario.schedules`
- :mod:`pytest_rafael.scenario.failures`
"""

from __future__ import annotations

from pytest_rafael.scenario.failures import INDEX_SCHEMA, failures_dir, scenario_name_for
from pytest_rafael.scenario.schedules import (
    DEFAULT_FAILURES_DIR,
    FAILURES_ENV,
    INDEX_NAME,
    FailureRecord,
    FaultSchedule,
    apply_schedule,
    describe_fault,
    fault_from_dict,
    fault_to_dict,
    load_failures,
    record_failure,
    record_pending_failure,
    take_pending,
)

__all__ = [
    "DEFAULT_FAILURES_DIR",
    "FAILURES_ENV",
    "INDEX_NAME",
    "INDEX_SCHEMA",
    "FailureRecord",
    "FaultSchedule",
    "apply_schedule",
    "describe_fault",
    "failures_dir",
    "fault_from_dict",
    "fault_to_dict",
    "load_failures",
    "record_failure",
    "record_pending_failure",
    "scenario_name_for",
    "take_pending",
]
