"""The parent's side of a stressor's child process: spawning it (a
pre-forked spawner keeps start-up fast), its ready line, its scratch
folders and its CPU time."""

from __future__ import annotations

import contextlib
import os
import selectors
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import psutil

from pytest_rafael.errors import RafaelError
from pytest_rafael.faults.stress_limits import StressError

_DIR_PREFIX = "rafael-stress-"

_REAP_TIMEOUT_S = 10.0


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


class NotStarted(RafaelError):
    """The child printed no first line: it hung (``exit_code`` None) or exited. Callers
    turn it into their own error, which names the fault."""

    def __init__(self, exit_code: int | None, last_error: str) -> None:
        super().__init__(last_error)
        self.exit_code = exit_code
        self.last_error = last_error


def first_line(child: _Child, timeout_s: float) -> bytes:
    """The child's first line of output (it says it is ready), without its newline.
    Raises :class:`NotStarted`; a child that exited is reaped."""
    stdout = child.popen.stdout
    assert stdout is not None
    deadline = time.monotonic() + timeout_s
    buf = b""
    with selectors.DefaultSelector() as sel:
        sel.register(stdout, selectors.EVENT_READ)
        while b"\n" not in buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise NotStarted(None, "")
            if not sel.select(min(left, 0.5)):
                continue
            chunk = os.read(stdout.fileno(), 4096)
            if not chunk:  # EOF: the child died before it was ready
                child.terminate(0.0)
                err = child.stderr.strip().splitlines()
                raise NotStarted(child.popen.returncode, err[-1] if err else "no output")
            buf += chunk
    return buf.split(b"\n", 1)[0]


def _read_ready(child: _Child, kind: str, timeout_s: float) -> dict[str, int]:
    """Wait for the child's ``ready`` line; a child that dies or hangs becomes a StressError."""
    try:
        line = first_line(child, timeout_s).decode(errors="replace")
    except NotStarted as exc:
        if exc.exit_code is None:
            raise StressError(
                f"{kind} stressor: load not in place within {timeout_s:g} s"
            ) from None
        raise StressError(
            f"{kind} stressor: child exited with code {exc.exit_code} "
            f"before the load was in place: {exc.last_error}"
        ) from None
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
