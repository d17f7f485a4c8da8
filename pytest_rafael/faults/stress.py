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
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import psutil

from pytest_rafael.errors import RafaelError

if TYPE_CHECKING:
    from pytest_rafael.scenario.loader import Attribute

__all__ = [
    "KINDS",
    "StressError",
    "StressLimits",
    "Stressor",
    "Stressors",
    "normalize_attributes",
    "start_stressor",
]

KINDS = ("cpu", "memory", "disk")
_MB = 1024 * 1024
_DIR_PREFIX = "rafael-stress-"
_DISK_FREE_SHARE = 0.5
_REAP_TIMEOUT_S = 10.0


class StressError(RafaelError):
    """A stressor was refused or could not be started. ``str()`` is one line."""


@dataclass(frozen=True)
class StressLimits:
    """The blast radius of stressors.

    ``memory_share``: a memory stressor may take at most this share of
    ``psutil.virtual_memory().available`` at its start (``--rafael-memory-cap``).
    ``max_disk_mb``: the largest file a disk stressor writes (it rewrites that region).
    ``start_timeout_s``: how long the load may take to be in place.
    ``stop_grace_s``: how long a stop waits for a graceful exit before SIGKILL.
    """

    memory_share: float = 0.5
    max_disk_mb: float = 512.0
    max_block_kb: int = 65536  # at most the scenario schema's bound (STRESS_ATTRIBUTES)
    start_timeout_s: float = 30.0
    stop_grace_s: float = 2.0

    def __post_init__(self) -> None:
        if isinstance(self.memory_share, bool) or not 0.0 <= self.memory_share <= 1.0:
            raise StressError(
                f"stress limits: memory_share must be in 0..1, got {self.memory_share!r}"
            )
        for name in ("max_disk_mb", "max_block_kb", "start_timeout_s", "stop_grace_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise StressError(f"stress limits: {name} must be a positive number, got {value!r}")


# --- attribute validation --------------------------------------------------------------

_TYPES: dict[str, tuple[type, ...]] = {"int": (int,), "number": (int, float), "bool": (bool,)}


def _top(attr: Attribute, limits: StressLimits) -> float:
    """The attribute's upper bound on this machine, under these limits."""
    if attr.cap == "cpu_count":
        return float(min(attr.maximum, os.cpu_count() or 1))
    if attr.cap:
        return min(attr.maximum, float(getattr(limits, attr.cap)))
    return float(attr.maximum)


def _check_value(kind: str, name: str, attr: Attribute, value: Any, limits: StressLimits) -> None:
    types = _TYPES[attr.kind]
    # bool is an int subclass: `cores: true` must not mean one core.
    wrong_bool = isinstance(value, bool) and bool not in types
    if wrong_bool or not isinstance(value, types):
        wanted = " or ".join(t.__name__ for t in types)
        raise StressError(f"{kind} stressor: attribute {name!r} must be {wanted}, got {value!r}")
    if attr.kind == "bool":
        return
    top = _top(attr, limits)
    if not isinstance(value, (int, float)) or not attr.minimum <= value <= top:
        raise StressError(
            f"{kind} stressor: attribute {name!r} must be between {attr.minimum:g} and "
            f"{top:g}, got {value!r}"
        )


def normalize_attributes(
    kind: str, attributes: Mapping[str, Any], limits: StressLimits | None = None
) -> dict[str, Any]:
    """Validate ``attributes`` of a ``kind`` stressor and fill in defaults.

    Usable at scenario-load time (no process is started). Raises :class:`StressError` with one
    line naming the kind and the attribute. The memory cap is not checked here: it depends on
    the memory available when the stressor starts.
    """
    # The one attribute schema, shared with the scenario loader and the strategies.
    from pytest_rafael.scenario.loader import STRESS_ATTRIBUTES

    limits = limits or StressLimits()
    if kind not in STRESS_ATTRIBUTES:
        raise StressError(f"unknown stressor kind {kind!r}; valid kinds: {', '.join(KINDS)}")
    schema = STRESS_ATTRIBUTES[kind]
    if not isinstance(attributes, Mapping):
        raise StressError(
            f"{kind} stressor: attributes must be a mapping, got {type(attributes).__name__}"
        )
    unknown = sorted(str(k) for k in attributes if k not in schema)
    if unknown:
        raise StressError(
            f"{kind} stressor: unknown attribute {unknown[0]!r}; valid: {', '.join(schema)}"
        )
    out: dict[str, Any] = {}
    for name, attr in schema.items():
        if name not in attributes:
            if attr.required:
                raise StressError(f"{kind} stressor: attribute {name!r} is required")
            out[name] = attr.default
            continue
        _check_value(kind, name, attr, attributes[name], limits)
        out[name] = attributes[name]
    if kind == "disk" and out["block_kb"] * 1024 > out["mb"] * _MB:
        raise StressError(
            f"disk stressor: attribute 'block_kb' ({out['block_kb']}) exceeds the file size "
            f"({out['mb']:g} MB)"
        )
    return out


def _check_memory_cap(mb: float, limits: StressLimits) -> None:
    available_mb = psutil.virtual_memory().available / _MB
    allowed_mb = available_mb * limits.memory_share
    if mb > allowed_mb:
        raise StressError(
            f"memory stressor: requested {mb:g} MB exceeds the allowed {allowed_mb:.0f} MB "
            f"({limits.memory_share:.0%} of {available_mb:.0f} MB available)"
        )


def _check_disk_space(base: Path, mb: float) -> None:
    # Never let a stressor fill a disk: keep its file within half of the free space.
    free_mb = shutil.disk_usage(base).free / _MB
    allowed_mb = free_mb * _DISK_FREE_SHARE
    if mb > allowed_mb:
        raise StressError(
            f"disk stressor: requested {mb:g} MB exceeds the allowed {allowed_mb:.0f} MB "
            f"({_DISK_FREE_SHARE:.0%} of {free_mb:.0f} MB free in {str(base)!r})"
        )


# --- the child process handle ----------------------------------------------------------


class _Child:
    """What must be cleaned up: the process group and the temp folder.

    Kept apart from :class:`Stressor` so that the ``weakref.finalize`` safety net can hold it
    without keeping the stressor alive.
    """

    def __init__(self, popen: subprocess.Popen[bytes], tempdir: Path | None) -> None:
        self.popen = popen
        self.tempdir = tempdir
        self.pgid = popen.pid  # start_new_session: the child leads its own group
        self.final: dict[str, int] = {}
        self.stderr = ""
        self.done = False
        self._lock = threading.Lock()

    def exited(self) -> bool:
        """Has the leader exited? Does not reap it, so its pid (= the group id) stays ours."""
        if self.popen.returncode is not None:
            return True
        if not hasattr(os, "waitid"):  # some BSDs: poll() reaps, a tiny pid-reuse window
            return self.popen.poll() is not None
        try:
            info = os.waitid(os.P_PID, self.popen.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return True
        return info is not None

    def terminate(self, grace_s: float) -> None:
        """Ask for a graceful stop, then SIGKILL the whole group; reap; delete temp files.

        Idempotent. The leader is reaped only after the group was killed: while it is alive
        or a zombie its pid cannot be reused, so ``killpg`` never hits a stranger's group.
        """
        with self._lock:  # a fault timer and the test teardown may stop at the same time
            if self.done:
                return
            self.done = True
            self._terminate(grace_s)

    def _terminate(self, grace_s: float) -> None:
        try:
            if self.popen.returncode is None:
                if not self.exited():
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(self.popen.pid, signal.SIGTERM)
                    deadline = time.monotonic() + grace_s
                    while not self.exited() and time.monotonic() < deadline:
                        time.sleep(0.005)
                # Also when the leader exited: forked CPU workers must go with it.
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(self.pgid, signal.SIGKILL)
                try:
                    self.popen.wait(_REAP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    # Stuck in the kernel (D state, e.g. fsync on a hung disk): SIGKILL lands
                    # when the call returns. Do not hang the test run on it.
                    self.stderr = f"did not exit within {_REAP_TIMEOUT_S:g} s of SIGKILL"
                    return
            self._collect_output()
        finally:
            if self.tempdir is not None:
                shutil.rmtree(self.tempdir, ignore_errors=True)

    def _collect_output(self) -> None:
        # The child writes two short lines at most; the pipes cannot have blocked it.
        if self.popen.stdout is not None:
            for line in self.popen.stdout.read().decode(errors="replace").splitlines():
                parsed = _parse_line(line)
                if parsed is not None and parsed[0] == "final":
                    self.final = parsed[1]
            self.popen.stdout.close()
        if self.popen.stderr is not None:
            self.stderr = self.popen.stderr.read().decode(errors="replace")
            self.popen.stderr.close()


def _parse_line(line: str) -> tuple[str, dict[str, int]] | None:
    """``EVENT key=int ...`` (the child's protocol, see ``stress_child``) or ``None``."""
    parts = line.split()
    if not parts:
        return None
    event, *words = parts
    fields: dict[str, int] = {}
    for word in words:
        key, sep, value = word.partition("=")
        if not sep or not value.lstrip("-").isdigit():
            return None
        fields[key] = int(value)
    return event, fields


def _encode_spec(spec: Mapping[str, Any]) -> list[str]:
    """The child's argv words: ``key=value``, booleans as 1/0 (see ``stress_child``)."""
    return [f"{k}={int(v) if isinstance(v, bool) else v}" for k, v in spec.items()]


def _read_ready(child: _Child, kind: str, timeout_s: float) -> dict[str, int]:
    """Wait for the child's ``ready`` line; a child that dies or hangs becomes a StressError."""
    stdout = child.popen.stdout
    assert stdout is not None
    deadline = time.monotonic() + timeout_s
    buf = b""
    with selectors.DefaultSelector() as sel:
        sel.register(stdout, selectors.EVENT_READ)
        while b"\n" not in buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise StressError(f"{kind} stressor: load not in place within {timeout_s:g} s")
            if not sel.select(min(left, 0.5)):
                continue
            chunk = os.read(stdout.fileno(), 4096)
            if not chunk:  # EOF: the child died before it was ready
                child.terminate(0.0)
                err = child.stderr.strip().splitlines()
                raise StressError(
                    f"{kind} stressor: child exited with code {child.popen.returncode} "
                    f"before the load was in place: {err[-1] if err else 'no output'}"
                )
            buf += chunk
    line = buf.split(b"\n", 1)[0].decode(errors="replace")
    parsed = _parse_line(line)
    if parsed is None or parsed[0] != "ready":
        raise StressError(f"{kind} stressor: unexpected output from the child: {line[:80]!r}")
    return parsed[1]


def _pid_namespace() -> str:
    """An id of this pid namespace: a pid means the same process only within one."""
    try:
        return str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        return "0"


def _dir_prefix() -> str:
    return f"{_DIR_PREFIX}{os.getpid()}-{_pid_namespace()}-"


def _sweep_stale_dirs(base: Path) -> None:
    """Remove disk-stressor folders left by a parent that was killed (SIGKILL skips cleanup).

    The folder name carries the parent pid and its pid namespace; only folders of this
    namespace whose parent is gone are removed (a shared /tmp may hold another container's).
    """
    try:
        entries = list(base.glob(f"{_DIR_PREFIX}*-*-*"))
    except OSError:
        return
    namespace = _pid_namespace()
    for entry in entries:
        parts = entry.name[len(_DIR_PREFIX) :].split("-")
        if len(parts) < 3 or not parts[0].isdigit() or parts[1] != namespace:
            continue
        if not psutil.pid_exists(int(parts[0])):
            shutil.rmtree(entry, ignore_errors=True)


# --- the stressor ----------------------------------------------------------------------


def _cpu_seconds(proc: psutil.Process) -> float:
    """CPU time of a one-thread process since it started, to the ns where Linux tells it.

    psutil's ``cpu_times()`` counts in clock ticks (10 ms): a stressor that lives a few
    milliseconds would read as 0 % or as a tick's worth. ``/proc/PID/schedstat`` has ns.
    """
    try:
        with open(f"/proc/{proc.pid}/schedstat", "rb") as f:
            return int(f.read().split()[0]) / 1e9
    except (OSError, ValueError, IndexError):
        pass
    try:
        t = proc.cpu_times()
    except psutil.Error:
        return 0.0
    return t.user + t.system


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


_CHILD_SCRIPT = Path(__file__).with_name("stress_child.py")


def _child_argv(words: list[str]) -> list[str]:
    # -S: no site-packages and no .pth hooks. The child needs only the standard library, so
    # it runs as a plain script: no package __init__ (which may grow imports), no runpy.
    # From a zipped install there is no file to run: fall back to -m and PYTHONPATH.
    if _CHILD_SCRIPT.is_file():
        return [sys.executable, "-S", str(_CHILD_SCRIPT), *words]
    return [sys.executable, "-S", "-m", "pytest_rafael.faults.stress_child", *words]


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    # The child runs without site-packages (-S) and must still find this very package,
    # installed or a checkout on sys.path: prepend the folder that holds it.
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    env.pop("PYTHONSTARTUP", None)
    return env


def _popen(argv: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_child_env(),
        start_new_session=True,  # own process group: killed as a whole, immune to Ctrl-C
        close_fds=True,
    )


class _Spawner:
    """A thread that lives as long as the process and starts children for other threads.

    Linux sends ``PR_SET_PDEATHSIG`` when the *thread* that forked the child ends, not the
    process. A stressor started from a short-lived thread (a timer applying a fault at a
    ``start:`` offset) would be killed as soon as that thread returned; forking from this
    daemon thread (or the main thread) ties the child to the life of the process instead.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: list[tuple[list[str], Future[subprocess.Popen[bytes]]]] = []
        self._wake = threading.Condition(self._lock)
        self._thread: threading.Thread | None = None

    def spawn(self, argv: list[str]) -> subprocess.Popen[bytes]:
        future: Future[subprocess.Popen[bytes]] = Future()
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="rafael-stress-spawner", daemon=True
                )
                self._thread.start()
            self._jobs.append((argv, future))
            self._wake.notify()
        return future.result()

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._jobs:
                    self._wake.wait()
                argv, future = self._jobs.pop(0)
            try:
                future.set_result(_popen(argv))
            except BaseException as exc:
                future.set_exception(exc)


_spawner = _Spawner()


def _spawn(argv: list[str]) -> subprocess.Popen[bytes]:
    if threading.current_thread() is threading.main_thread():
        return _popen(argv)
    return _spawner.spawn(argv)


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
