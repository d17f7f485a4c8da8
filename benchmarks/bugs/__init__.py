"""A corpus of planted resilience bugs (not shipped with the package).

Each module is one bug class seen in production: a small service and client over real
loopback sockets, a one-line ``DESCRIPTION``, the ``MINIMAL`` fault schedule that
triggers it and a ``System`` whose ``check`` fails only because of the planted bug.
``benchmarks/bug_finding.py`` hunts them; ``pytest benchmarks/bugs`` runs each bug's own
chaos test (they fail: that is the point).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from pytest_rafael.scenario.schedule_model import FaultSchedule

BUG_NAMES = (
    "retry_no_backoff",
    "retry_non_idempotent",
    "missing_timeout",
    "timeout_over_deadline",
    "breaker_never_half_opens",
    "cache_stampede",
    "partial_read",
    "pool_keeps_reset_conn",
    "fallback_hides_loss",
    "unbounded_queue",
    "retry_storm",
    "slow_a_down_b",
    "connection_leak",
    "truncated_request_stored",
    "read_until_close",
    "ack_lost_double_process",
    "stale_health_cache",
    "lock_not_released",
    "no_bulkhead",
    "server_partial_request",
    "reply_desync",
    "secondary_no_timeout",
    "per_read_timeout",
    "budget_between_reads",
    "cache_and_db_slow",
)


@dataclass(frozen=True)
class PlantedBug:
    name: str
    description: str
    minimal: FaultSchedule
    module: ModuleType

    @property
    def targets(self) -> tuple[str, ...]:
        return tuple(self.module.System.TARGETS)


def load(name: str, package: str = "benchmarks.bugs") -> PlantedBug:
    """The bug ``name`` of the corpus ``package`` (``benchmarks.bugs`` or the held-out
    ``benchmarks.heldout``, which uses this package's kit)."""
    module = importlib.import_module(f"{package}.{name}")
    source = str(Path(module.__file__ or name).name)
    minimal = FaultSchedule.from_dicts(module.MINIMAL, source=f"{source}: MINIMAL")
    return PlantedBug(name, module.DESCRIPTION, minimal, module)


def corpus(
    names: tuple[str, ...] = BUG_NAMES, package: str = "benchmarks.bugs"
) -> list[PlantedBug]:
    return [load(name, package) for name in names]


def names_of(package: str) -> tuple[str, ...]:
    """The ``BUG_NAMES`` a corpus package lists."""
    names: tuple[str, ...] = importlib.import_module(package).BUG_NAMES
    return names
