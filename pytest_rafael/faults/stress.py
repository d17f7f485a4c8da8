"""CPU, memory and disk stressors: real load in a child process, capped and measured.

Each stressor is one child process (``stress_child``) in its own process group, so the load
is real (other processes, including the code under test, compete with it) and can be killed
as a whole. The child dies with its parent (Linux: ``PR_SET_PDEATHSIG``; elsewhere it polls
``os.getppid()``), so no stressor outlives a pytest that was killed.

The parent validates every attribute before anything starts, refuses loads beyond the caps
of :class:`StressLimits`, waits until the load is really in place, and measures what the
child achieved with psutil (CPU % over the stressor's life, peak RSS, bytes written).
:meth:`Stressor.stop` is idempotent and always reaps the process group and deletes temp
files; a ``weakref.finalize`` (which also runs at interpreter exit) is the safety net for a
stressor nobody stopped.

>>> limits = StressLimits(memory_share=0.5)
>>> with start_stressor("memory", {"mb": 64}, limits) as s:   # doctest: +SKIP
...     run_code_under_test()
>>> s.observed                                                  # doctest: +SKIP
{'rss_mb': 74.1, 'requested_mb': 64, 'duration_s': 0.52}
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
import time
import weakref
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import psutil

if TYPE_CHECKING:
    pass
from pytest_rafael.faults.stress_limits import (
    _MB,
    KINDS,
    StressError,
    StressLimits,
    _check_disk_space,
    _check_memory_cap,
    normalize_attributes,
)
from pytest_rafael.faults.stress_process import (
    _Child,
    _child_argv,
    _cpu_seconds,
    _dir_prefix,
    _encode_spec,
    _read_ready,
    _spawn,
    _sweep_stale_dirs,
)

__all__ = [
    "KINDS",
    "StressError",
    "StressLimits",
    "Stressor",
    "Stressors",
    "normalize_attributes",
    "start_stressor",
]


# --- attribute validation --------------------------------------------------------------


# --- the child process handle ----------------------------------------------------------


# --- the stressor ----------------------------------------------------------------------


class Stressor:
    """A running stressor. Use :func:`start_stressor` to create one."""

    def __init__(
        self,
        kind: str,
        attributes: dict[str, Any],
        child: _Child,
        ready: dict[str, int],
        limits: StressLimits,
    ) -> None:
        self.kind = kind
        self.attributes = attributes
        self.limits = limits
        self.pid = child.popen.pid
        self.tempdir = child.tempdir
        self._child = child
        self._ready = ready
        now = time.monotonic()
        self._started = now
        self._stopped_at: float | None = None
        self._proc = psutil.Process(child.popen.pid)
        # The CPU workers are fixed once the load is in place: look them up once, as listing
        # children scans every process of the system.
        self._workers = self._proc.children() if kind == "cpu" else []
        if kind == "cpu":
            # Average over the workers' whole life (they started spinning just before the
            # ready line; the child reports when, on the same monotonic clock): a stressor
            # that lives a few milliseconds is still measured over all of its load.
            since = ready.get("since_ns", 0) / 1e9
            if 0 < since <= now:
                self._started = since
        self._peak_rss = 0
        self._io0 = self._io_written()
        self._observed: dict[str, Any] = {}
        self._stop_lock = threading.Lock()
        self._finalizer = weakref.finalize(self, child.terminate, limits.stop_grace_s)
        self._sample()

    # -- measuring ------------------------------------------------------------------------

    def _workers_cpu_seconds(self) -> float:
        # Since fork: a worker's CPU time is all load (its set-up takes microseconds).
        return sum(_cpu_seconds(proc) for proc in self._workers)

    def _io_written(self) -> int:
        with contextlib.suppress(psutil.Error, AttributeError):
            io = self._proc.io_counters()
            # write_chars (Linux) counts every byte handed to write(), on any filesystem;
            # write_bytes only what reached a block device so far.
            return int(getattr(io, "write_chars", io.write_bytes))
        return 0

    def _sample(self) -> dict[str, Any]:
        if self._stopped_at is not None:
            return self._observed
        elapsed = time.monotonic() - self._started
        obs: dict[str, Any] = {"duration_s": round(elapsed, 3)}
        if self.kind == "cpu":
            cores = self.attributes["cores"]
            used = self._workers_cpu_seconds()
            pct = 100.0 * used / elapsed / cores if elapsed > 0 else 0.0
            obs.update(
                cpu_percent=round(pct, 1),
                cores=cores,
                requested_percent=self.attributes["percent"],
                # The absolute figure: over a few milliseconds a percentage says little.
                cpu_seconds=round(used, 4),
            )
        elif self.kind == "memory":
            with contextlib.suppress(psutil.Error):
                self._peak_rss = max(self._peak_rss, self._proc.memory_info().rss)
            obs.update(
                rss_mb=round(self._peak_rss / _MB, 1),
                requested_mb=self.attributes["mb"],
            )
        else:
            written = self._io_written() - self._io0
            obs.update(bytes_written=max(written, 0))
        self._observed = obs
        return obs

    @property
    def observed(self) -> dict[str, Any]:
        """The latest measurement (refreshed on access while the stressor runs)."""
        return dict(self._sample())

    @property
    def started_at(self) -> float:
        """``time.monotonic()`` when the load was in place."""
        return self._started

    @property
    def stopped_at(self) -> float | None:
        """``time.monotonic()`` when :meth:`stop` ran, ``None`` while running."""
        return self._stopped_at

    @property
    def running(self) -> bool:
        return self._stopped_at is None and not self._child.exited()

    # -- stopping -------------------------------------------------------------------------

    def stop(self) -> dict[str, Any]:
        """Stop the load and return what was observed. Idempotent; never raises for a child
        that already died (``observed["error"]`` says so). Thread-safe."""
        with self._stop_lock:
            return self._stop()

    def _stop(self) -> dict[str, Any]:
        if self._stopped_at is not None:
            return dict(self._observed)
        died_early = self._child.exited()
        obs = self._sample()
        self._stopped_at = time.monotonic()
        self._finalizer.detach()
        self._child.terminate(self.limits.stop_grace_s)
        final = self._child.final
        if self.kind == "disk":
            if "bytes_written" in final:  # the child's own count is exact and complete
                obs["bytes_written"] = final["bytes_written"]
                obs["fsyncs"] = final["fsyncs"]
            elif not self.attributes["fsync"]:
                obs["fsyncs"] = 0
        if died_early:
            err = self._child.stderr.strip().splitlines()
            code = self._child.popen.returncode
            obs["error"] = f"child exited early with code {code}" + (f": {err[-1]}" if err else "")
        self._observed = obs
        return dict(obs)

    def __enter__(self) -> Stressor:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<Stressor {self.kind} {self.attributes} pid={self.pid} {state}>"


def start_stressor(
    kind: str,
    attributes: Mapping[str, Any],
    limits: StressLimits,
    workdir: Path | None = None,
) -> Stressor:
    """Start a ``kind`` stressor and return once its load is really in place.

    ``kind`` ``cpu``: ``{"percent": 80, "cores": 1, "period_ms": 10}``;
    ``memory``: ``{"mb": 256}``; ``disk``: ``{"mb": 64, "block_kb": 64, "fsync": True}``.
    ``workdir``: where the disk stressor creates its temp folder (default: the system's).
    Raises :class:`StressError` (one line) for bad attributes, a load beyond the caps, or a
    child that could not put its load in place.
    """
    if os.name != "posix":
        raise StressError(f"{kind} stressor: needs a POSIX system (process groups, fork)")
    attrs = normalize_attributes(kind, attributes, limits)
    if kind == "memory":
        _check_memory_cap(float(attrs["mb"]), limits)
    spec: dict[str, Any] = {"kind": kind, "ppid": os.getpid(), **attrs}
    tempdir: Path | None = None
    if kind == "disk":
        base = Path(workdir) if workdir is not None else Path(tempfile.gettempdir())
        if not base.is_dir():
            raise StressError(f"disk stressor: workdir {str(base)!r} is not a folder")
        _sweep_stale_dirs(base)
        _check_disk_space(base, float(attrs["mb"]))
        tempdir = Path(tempfile.mkdtemp(prefix=_dir_prefix(), dir=base))
        spec["dir"] = str(tempdir)
    try:
        popen = _spawn(_child_argv(_encode_spec(spec)))
    except OSError as exc:
        if tempdir is not None:
            shutil.rmtree(tempdir, ignore_errors=True)
        raise StressError(f"{kind} stressor: cannot start the child process: {exc}") from None
    child = _Child(popen, tempdir)
    try:
        ready = _read_ready(child, kind, limits.start_timeout_s)
        stressor = Stressor(kind, attrs, child, ready, limits)
        if kind == "memory":
            _await_rss(stressor, float(attrs["mb"]), limits.start_timeout_s)
    except psutil.Error as exc:
        child.terminate(limits.stop_grace_s)
        raise StressError(f"{kind} stressor: the child vanished while starting: {exc}") from None
    except BaseException:
        child.terminate(limits.stop_grace_s)
        raise
    return stressor


def _await_rss(stressor: Stressor, mb: float, timeout_s: float) -> None:
    """The child touched every page; confirm from outside that the memory is resident."""
    deadline = time.monotonic() + timeout_s
    while stressor.observed["rss_mb"] < mb * 0.95:
        if time.monotonic() > deadline or not stressor.running:
            raise StressError(
                f"memory stressor: RSS reached only {stressor.observed['rss_mb']:g} MB "
                f"of {mb:g} MB within {timeout_s:g} s"
            )
        time.sleep(0.01)


class Stressors:
    """Every stressor of one scope (a test), stopped together: what the ``stressor`` fixture
    hands to a test.

    >>> with Stressors(StressLimits()) as stress:          # doctest: +SKIP
    ...     with stress.cpu(percent=80, cores=1):
    ...         run_code_under_test()
    ...     stress.memory(mb=256)                          # stopped by stop_all()
    """

    def __init__(self, limits: StressLimits, workdir: Path | None = None) -> None:
        self.limits = limits
        self.workdir = workdir
        self.started: list[Stressor] = []

    def start(self, kind: str, **attributes: Any) -> Stressor:
        stressor = start_stressor(kind, attributes, self.limits, self.workdir)
        self.started.append(stressor)
        return stressor

    def cpu(self, **attributes: Any) -> Stressor:
        """``percent`` (1..100, default 100) of ``cores`` cores (default 1)."""
        return self.start("cpu", **attributes)

    def memory(self, **attributes: Any) -> Stressor:
        """``mb`` MB made resident, within the memory cap."""
        return self.start("memory", **attributes)

    def disk(self, **attributes: Any) -> Stressor:
        """Write (and fsync) ``mb`` MB in ``block_kb`` blocks, over and over, in a temp dir."""
        return self.start("disk", **attributes)

    def stop_all(self) -> list[dict[str, Any]]:
        """Stop every stressor (idempotent); their observations, in start order."""
        errors: list[BaseException] = []
        observed = []
        for stressor in self.started:
            try:
                observed.append(stressor.stop())
            except BaseException as exc:  # stop the others first, then report
                errors.append(exc)
        if errors:
            raise errors[0]
        return observed

    def __enter__(self) -> Stressors:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop_all()
