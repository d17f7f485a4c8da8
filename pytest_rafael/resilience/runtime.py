"""Which genome each module runs with, and its counters.

In application code the adopted genome comes from ``rafael.genome.yaml`` (or the file
named by ``RAFAEL_GENOME_FILE``), read once, on the first call of any decorated
function. During a chaos iteration the plugin swaps in a candidate with
:func:`use_genome`; decorated functions pick it up on their next call (one attribute
read per call, no lock on the call path).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pytest_rafael.genome.file import load_genome_file
from pytest_rafael.genome.genome import Genome
from pytest_rafael.resilience.counters import Counters
from pytest_rafael.resilience.pipeline import Pipeline, current_timeout
from pytest_rafael.settings import env_value, option

ENV_VAR = str(option("genome_file").env)  # from the option table
DEFAULT_FILE = str(option("genome_file").default)

UNLOADED: Any = object()  # a slot whose adopted genome has not been read yet

_lock = threading.RLock()
_genome_file: Path | None = None
_file_genomes: dict[str, Genome] | None = None
_slots: dict[str, Slot] = {}
_epoch = 0  # bumped when the file is re-read: restores must not bring back stale pipelines


class Slot:
    """A module's current pipeline (``None``: run bare) and its counters."""

    __slots__ = ("counters", "idempotent", "module", "pipeline")

    def __init__(self, module: str) -> None:
        self.module = module
        self.pipeline: Pipeline | None = UNLOADED
        self.counters = Counters()
        self.idempotent: bool | None = None  # as @antifragile(idempotent=...) declared it

    def declare(self, idempotent: bool | None) -> None:
        """Record a decorator's declaration; one ``False`` in a module wins, because one
        non-idempotent call is enough for a retry to do harm."""
        if idempotent is None:
            return
        with _lock:
            self.idempotent = idempotent if self.idempotent is not False else False
            self.pipeline = UNLOADED  # recompile with the declaration

    def load(self) -> Pipeline | None:
        """Compile the adopted genome of this module (first call only)."""
        with _lock:
            if self.pipeline is UNLOADED:
                genome = adopted_genomes().get(self.module)
                self.pipeline = compile_genome(genome, self.counters, self.idempotent)
            return self.pipeline


def slot(module: str) -> Slot:
    s = _slots.get(module)
    if s is None:
        with _lock:
            s = _slots.setdefault(module, Slot(module))
    return s


def compile_genome(
    genome: Genome | None, counters: Counters, declared_idempotent: bool | None = None
) -> Pipeline | None:
    if genome is None or not genome.genes:
        return None
    return Pipeline(genome, counters, idempotent=_merged(genome.idempotent, declared_idempotent))


def _merged(*declarations: bool | None) -> bool | None:
    """One module's idempotency from its declarations (genome file, decorator): a
    ``False`` from any of them wins, so that no file can make a call the code declares
    non-idempotent be sent twice; else ``True`` from any; else None (not declared)."""
    if False in declarations:
        return False
    return True if True in declarations else None


def genome_file() -> Path:
    """The adopted genome file in use: :func:`set_genome_file`, else the environment
    variable ``RAFAEL_GENOME_FILE``, else ``./rafael.genome.yaml``."""
    if _genome_file is not None:
        return _genome_file
    path: Path = env_value("genome_file")
    return path


def adopted_genomes() -> dict[str, Genome]:
    """Every module's adopted genome, read from :func:`genome_file` once.

    A broken file raises :class:`~pytest_rafael.genome.file.GenomeFileError` at the
    first decorated call: running silently without the adopted resilience would hide
    the problem until the next outage."""
    global _file_genomes
    with _lock:
        if _file_genomes is None:
            _file_genomes = load_genome_file(genome_file())
        return _file_genomes


def set_genome_file(path: str | os.PathLike[str] | None) -> None:
    """Read the adopted genomes from ``path`` (``None``: back to env/default) from the
    next call on."""
    global _genome_file
    with _lock:
        _genome_file = Path(path) if path is not None else None
        reload()


def reload() -> None:
    """Forget the loaded file; modules re-read it on their next call (swapped-in
    candidates stay until their :func:`use_genome` block ends)."""
    global _file_genomes, _epoch
    with _lock:
        _file_genomes = None
        _epoch += 1
        for s in _slots.values():
            s.pipeline = UNLOADED


@contextmanager
def use_genome(genome: Genome | None, module: str) -> Iterator[Genome | None]:
    """Run ``module`` with ``genome`` (``None``: no genes) inside the block.

    Policy state (breaker, rate-limit bucket, cache) starts fresh, so one iteration
    cannot inherit another candidate's open breaker. Thread-safe; nested blocks restore
    in order."""
    s = slot(module)
    pipeline = compile_genome(
        None
        if genome is None
        else Genome(module, genome.generation, genome.genes, genome.lineage, genome.idempotent),
        s.counters,
        s.idempotent,
    )
    with _lock:
        previous, epoch = s.pipeline, _epoch
        s.pipeline = pipeline
    try:
        yield genome
    finally:
        with _lock:
            s.pipeline = previous if epoch == _epoch else UNLOADED


def counters(module: str) -> dict[str, Any]:
    """The module's counters since the last :func:`reset_counters` (see
    :meth:`Counters.snapshot` for the keys)."""
    return slot(module).counters.snapshot()


def reset_counters(module: str | None = None) -> None:
    """Zero the counters of ``module`` (all modules if ``None``); times in later
    snapshots count from here."""
    with _lock:
        targets = [slot(module)] if module is not None else list(_slots.values())
    for s in targets:
        s.counters.reset()


@contextmanager
def measuring(*modules: str) -> Iterator[dict[str, Any]]:
    """Reset the ``modules``' counters, run the block, then fill the yielded dict with
    their :func:`counters` (summed over several modules) plus ``cpu_time_s`` (process CPU
    time spent in the block): the ``runtime`` argument of ``Measurement.from_iteration``.
    Enter it right at the start of the test call so that its times line up with the
    fault window's offsets.

    With no ``modules``, every module with ``@antifragile`` functions (including those
    decorated inside the block) is measured, and the dict reports those the block called:
    their summed counters, ``cpu_time_s``, and under ``genomes`` the genome each ran with
    (``None``: no genes). It stays empty when the block called none, so nothing is
    claimed about code the block never touched."""
    out: dict[str, Any] = {}
    with _lock:
        targets = list(modules) if modules else list(_slots)
    for module in targets:
        reset_counters(module)
    cpu0 = time.process_time()
    try:
        yield out
    finally:
        cpu = time.process_time() - cpu0
        called = list(modules) or _called()
        if called:
            out.update(merge_counters([counters(m) for m in called]))
            out["cpu_time_s"] = cpu
        if called and not modules:
            out["genomes"] = {m: _genome_dict(m) for m in called}


def _called() -> list[str]:
    """The modules whose decorated functions ran since their counters were reset."""
    with _lock:
        found = list(_slots.values())
    return sorted(s.module for s in found if s.counters.calls > 0)


def _genome_dict(module: str) -> dict[str, Any] | None:
    """The genome ``module`` runs with, as results.json stores genomes."""
    genome = active_genome(module)
    return genome.to_dict() if genome is not None else None


_LATEST = ("latency_max_s", "ok_latency_max_s", "last_failure_at_s")


def merge_counters(snapshots: list[dict[str, Any]]) -> dict[str, Any]:
    """Several modules' counters as one test's: counts and total latency add up, maxima
    and the last failure take the latest, and the test recovered when the last of its
    failing modules did (not at all, if one of them never did)."""
    if len(snapshots) == 1:
        return snapshots[0]
    out: dict[str, Any] = {}
    for key in snapshots[0]:
        values = [s[key] for s in snapshots if s.get(key) is not None]
        if key in _LATEST:
            out[key] = max(values, default=None)
        elif key == "recovered_at_s":
            failed = [s for s in snapshots if s.get("last_failure_at_s") is not None]
            recovered = [s["recovered_at_s"] for s in failed]
            out[key] = None if not failed or None in recovered else max(recovered)
        else:
            out[key] = sum(values)
    return out


def idempotent(module: str, genome: Genome | None = None) -> bool | None:
    """Whether ``module``'s calls may be sent twice: ``False`` when the genome (given, or
    else the adopted one) or the decorator says so, else ``True`` when either does, else
    None (not declared)."""
    if genome is None:
        genome = adopted_genomes().get(module)
    return _merged(None if genome is None else genome.idempotent, slot(module).idempotent)


def active_genome(module: str) -> Genome | None:
    """The genome ``module`` runs with right now (swapped-in candidate or adopted)."""
    s = slot(module)
    p = s.pipeline if s.pipeline is not UNLOADED else s.load()
    return p.genome if p is not None else None


__all__ = [
    "active_genome",
    "adopted_genomes",
    "counters",
    "current_timeout",
    "genome_file",
    "idempotent",
    "measuring",
    "reload",
    "reset_counters",
    "set_genome_file",
    "use_genome",
]
