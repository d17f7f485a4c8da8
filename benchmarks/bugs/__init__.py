"""A corpus of planted resilience bugs (not shipped with the package).

Each module is one bug class seen in production: a small service and client over real
loopback sockets, a one-line ``DESCRIPTION``, the ``MINIMAL`` fault schedule that
triggers it and a ``System`` whose ``check`` fails only because of the planted bug.
``benchmarks/bug_finding.py`` hunts them; ``pytest benchmarks/bugs`` runs each bug's own
chaos test (they fail: that is the point).
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import pkgutil
import sys
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
    """The bug ``name`` of the corpus ``package`` (``benchmarks.bugs``, the held-out
    ``benchmarks.heldout``, or a folder :func:`package_of` made importable). A module
    without the parts of a bug (``DESCRIPTION``, ``MINIMAL``, a ``System`` with
    ``TARGETS``) raises ``AttributeError`` naming the missing one."""
    module = importlib.import_module(f"{package}.{name}")
    source = str(Path(module.__file__ or name).name)
    for part in ("DESCRIPTION", "MINIMAL", "System"):
        if not hasattr(module, part):
            raise AttributeError(f"{source} has no {part}")
    if not hasattr(module.System, "TARGETS"):
        raise AttributeError(f"{source}: its System has no TARGETS")
    minimal = FaultSchedule.from_dicts(module.MINIMAL, source=f"{source}: MINIMAL")
    return PlantedBug(name, module.DESCRIPTION, minimal, module)


def names_of(package: str) -> tuple[str, ...]:
    """The bugs of a corpus package: the ``BUG_NAMES`` it lists, or else each of its
    modules whose name does not start with ``_`` (nor ``conftest``), in name order."""
    module = importlib.import_module(package)
    listed: tuple[str, ...] | None = getattr(module, "BUG_NAMES", None)
    if listed is not None:
        return tuple(listed)
    found = pkgutil.iter_modules(getattr(module, "__path__", []))
    return tuple(
        sorted(
            info.name for info in found if not info.name.startswith("_") and info.name != "conftest"
        )
    )


def package_of(corpus: str) -> str:
    """The importable package a ``--corpus`` value names: a dotted package
    (``benchmarks.heldout``) or a folder of bug modules. A folder is imported under a
    name of its own (``rafael_corpus_<folder>``), so that a folder called ``bugs`` or
    ``json`` is never mistaken for a package of that name; its modules may import the
    kit as ``benchmarks.bugs._kit``. Raises ``ValueError`` (one line) for a value that
    is neither."""
    folder = Path(corpus)
    if not folder.is_dir():
        if "/" in corpus or corpus.startswith("."):
            raise ValueError(f"--corpus {corpus}: no such folder")
        try:
            importlib.import_module(corpus)
        except ImportError as exc:
            raise ValueError(f"--corpus {corpus}: neither a folder nor a package ({exc})") from None
        return corpus
    folder = folder.resolve()
    name = "rafael_corpus_" + "".join(c if c.isalnum() else "_" for c in folder.name)
    if name not in sys.modules:
        init = folder / "__init__.py"
        if init.is_file():
            spec = importlib.util.spec_from_file_location(
                name, init, submodule_search_locations=[str(folder)]
            )
        else:  # a plain folder: a package with no code of its own
            spec = importlib.machinery.ModuleSpec(name, None, is_package=True)
            spec.submodule_search_locations = [str(folder)]
        assert spec is not None
        package = importlib.util.module_from_spec(spec)
        sys.modules[name] = package
        if spec.loader is not None:
            spec.loader.exec_module(package)
    return name
