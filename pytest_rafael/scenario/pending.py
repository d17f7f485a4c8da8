"""The fault schedule each Hypothesis test applied last, until its call phase is known to
have failed or passed; and where failures are indexed.

A light module (no Hypothesis, no YAML, no fault injection) so that the plugin can ask
after every test without importing :mod:`pytest_rafael.scenario.schedules`.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

INDEX_NAME = "index.json"  # the failure index in a failures folder

_lock = threading.Lock()
_pending: dict[str, Any] = {}  # nodeid -> FaultSchedule


def put(nodeid: str, schedule: Any) -> None:
    """Note the schedule of the example Hypothesis reports for ``nodeid``."""
    with _lock:
        _pending[nodeid] = schedule


def has(nodeid: str) -> bool:
    return nodeid in _pending


def take(nodeid: str) -> Any:
    """The noted schedule of ``nodeid`` (None if none), removed."""
    with _lock:
        return _pending.pop(nodeid, None)


def has_failures(folder: Path) -> bool:
    """Whether ``folder`` holds a failure index (some test stored a shrunk schedule). A
    folder that cannot be looked into (no permission, a name too long) holds none this
    run could have written: it must not cost the run its report at the very end."""
    try:
        return (folder / INDEX_NAME).is_file()
    except OSError:
        return False
