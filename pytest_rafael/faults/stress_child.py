"""The stressor child program: ``python -S path/to/stress_child.py key=value ...``.

It runs in its own process (group) so that the load it creates is real and so that it can be
killed as a whole. It must start fast and stay light: only the standard library is imported
here (never pytest, psutil or the rest of the plugin, not even this package), because every
stressor pays for this start-up before its load is in place. Even ``json``, ``typing`` and
``contextlib`` are avoided: on a busy two-core machine they tripled the start-up of a bare
``python -S``. The parent runs it as a script with ``-S`` (``-m`` works too).

Protocol with the parent (``stress.py``):

- argv[1:] are ``key=value`` words: ``kind=cpu|memory|disk``, ``ppid=<parent pid>`` and the
  already validated attributes (the parent validates; the child trusts them); a later word
  wins over an earlier one with the same key.
- stdout carries lines ``EVENT key=value ...`` with integer values: one ``ready`` line once
  the load is in place, one ``final`` line on a graceful stop. Nothing else is written there.
- SIGTERM asks for a graceful stop; the parent escalates to SIGKILL of the process group.

The child dies with its parent: on Linux through ``prctl(PR_SET_PDEATHSIG, SIGKILL)`` (the
kernel kills it the moment the parent exits, even on SIGKILL of the parent); everywhere, the
main loops also poll ``os.getppid()`` and exit when the child has been re-parented.
"""

from __future__ import annotations

import os
import signal
import sys
import time

_PR_SET_PDEATHSIG = 1
_WATCH_INTERVAL_S = 0.2


class _Stop(BaseException):
    """Raised by the SIGTERM handler: a flag would only be seen after the current sleep
    (PEP 475 resumes interrupted sleeps), an exception ends it at once."""


def _request_stop(signum: int, frame: object) -> None:
    raise _Stop


def die_with_parent(expected_ppid: int) -> None:
    """Make this process die when ``expected_ppid`` goes away (Linux: immediately)."""
    if sys.platform.startswith("linux"):
        import ctypes  # only here: ctypes costs ~10 ms of start-up

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    # The parent may have died before prctl took effect (then we were re-parented already
    # and no death signal will ever come): check once now, the loops check again later.
    orphan_check(expected_ppid)


def orphan_check(expected_ppid: int) -> None:
    if os.getppid() != expected_ppid:
        os._exit(3)


def emit(event: str, **fields: int) -> None:
    words = [event, *(f"{key}={value}" for key, value in fields.items())]
    sys.stdout.write(" ".join(words) + "\n")
    sys.stdout.flush()


def parse_spec(words: list[str]) -> dict[str, str]:
    spec: dict[str, str] = {}
    for word in words:
        key, _, value = word.partition("=")
        spec[key] = value
    return spec


# --- cpu -------------------------------------------------------------------------------


def cpu_worker(percent: float, period_s: float, leader: int, started: int) -> None:
    """Busy-loop a duty cycle of ``percent`` of one core until the leader goes away.

    The busy part of each slice is measured in CPU time, not wall time, and a shortfall
    (the scheduler gave the core to someone else) is carried into the next slices, at most
    one slice's worth: on a contended machine the achieved load tracks the target as
    closely as the scheduler allows, without long bursts above it. One byte on ``started``
    tells the leader this worker is spinning.
    """
    die_with_parent(leader)
    os.write(started, b"w")
    os.close(started)
    share = percent / 100.0
    quota = share * period_s
    debt = 0.0
    while True:
        t0 = time.perf_counter()
        c0 = time.process_time()
        budget = min(quota + debt, period_s)
        while time.process_time() - c0 < budget and time.perf_counter() - t0 < period_s:
            pass
        used = time.process_time() - c0
        debt = min(max(quota + debt - used, 0.0), period_s)
        rest = period_s - (time.perf_counter() - t0)
        if rest > 0:
            time.sleep(rest)
        orphan_check(leader)


def run_cpu(spec: dict[str, str], ppid: int) -> None:
    percent = float(spec["percent"])
    cores = int(spec["cores"])
    period_s = float(spec["period_ms"]) / 1000.0
    me = os.getpid()
    workers: list[int] = []
    started_r, started_w = os.pipe()
    since_ns = time.monotonic_ns()  # the parent averages the load from here (same clock)
    for _ in range(cores):
        pid = os.fork()
        if pid == 0:  # worker: default signal handling, so SIGTERM/SIGKILL end it at once
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.close(started_r)
            try:
                cpu_worker(percent, period_s, me, started_w)
            finally:
                os._exit(0)
        workers.append(pid)
    os.close(started_w)
    # "Ready" means every worker is spinning, not merely forked: a test that only lasts a
    # few milliseconds must already run under load.
    got = 0
    while got < cores:
        chunk = os.read(started_r, cores - got)
        if not chunk:  # a worker died before starting: report what runs
            break
        got += len(chunk)
    os.close(started_r)
    try:
        emit("ready", pid=me, workers=len(workers), since_ns=since_ns)
        while True:
            time.sleep(_WATCH_INTERVAL_S)
            orphan_check(ppid)
    except _Stop:
        pass
    for pid in workers:
        try:  # noqa: SIM105 (contextlib costs start-up)
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for pid in workers:
        try:  # noqa: SIM105
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass
    emit("final", workers=len(workers))


# --- memory ----------------------------------------------------------------------------


def run_memory(spec: dict[str, str], ppid: int) -> None:
    import mmap

    size = int(float(spec["mb"]) * 1024 * 1024)
    page = mmap.PAGESIZE
    size = max(page, (size + page - 1) // page * page)
    # Private anonymous mapping: plain process memory (the default mmap(-1) is shared memory,
    # which the kernel books as page cache and never backs with huge pages), freed exactly
    # when we unmap or die, never written to disk.
    buf = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    if hasattr(mmap, "MADV_HUGEPAGE"):
        # Fewer page faults: on a VM, 4 KiB faults make 512 MB take over a second.
        buf.madvise(mmap.MADV_HUGEPAGE)
    # One non-zero byte per page, in C (extended slice assignment): every page becomes
    # resident, a few hundred MB take milliseconds.
    pages = size // page
    buf[::page] = b"\x01" * pages
    try:
        emit("ready", pid=os.getpid(), bytes=size, pages=pages)
        while True:
            time.sleep(_WATCH_INTERVAL_S)
            orphan_check(ppid)
    except _Stop:
        pass
    buf.close()
    emit("final", bytes=size)


# --- disk ------------------------------------------------------------------------------


def run_disk(spec: dict[str, str], ppid: int) -> None:
    directory = str(spec["dir"])
    total = int(float(spec["mb"]) * 1024 * 1024)
    block = int(spec["block_kb"]) * 1024
    do_fsync = spec["fsync"] == "1"
    path = os.path.join(directory, "stress.bin")
    data = os.urandom(block)  # incompressible, so compressing filesystems still do the I/O
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    written = 0
    fsyncs = 0
    offset = 0
    ready = False
    last_check = time.monotonic()
    try:
        while True:
            n = min(block, total - offset)
            written += os.pwrite(fd, data[:n] if n < block else data, offset)
            offset += n
            if offset >= total:  # stay bounded: rewrite the same region from the start
                offset = 0
            if do_fsync:
                os.fsync(fd)
                fsyncs += 1
            if not ready:  # the first block is on disk: the load is in place
                emit("ready", pid=os.getpid())
                ready = True
            now = time.monotonic()
            if now - last_check >= _WATCH_INTERVAL_S:
                orphan_check(ppid)
                last_check = now
    except _Stop:
        pass
    finally:
        os.close(fd)
    emit("final", bytes_written=written, fsyncs=fsyncs)


_RUNNERS = {"cpu": run_cpu, "memory": run_memory, "disk": run_disk}


def main(argv: list[str]) -> int:
    spec = parse_spec(argv[1:])
    ppid = int(spec["ppid"])
    signal.signal(signal.SIGTERM, _request_stop)
    # Ctrl-C in a terminal goes to the foreground group; the parent decides when we stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        die_with_parent(ppid)
        _RUNNERS[spec["kind"]](spec, ppid)
    except _Stop:  # stopped before the load was in place: nothing to report
        pass
    return 0


if __name__ == "__main__":
    code = main(sys.argv)
    sys.stdout.flush()
    # Skip interpreter finalization: nothing is left to clean up, and the parent is waiting.
    os._exit(code)
