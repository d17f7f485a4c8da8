"""Short scheduling slices for the threads that move a proxy's bytes (Linux 6.12+).

A toxic's delayed bytes leave when their pump thread wakes up. On a machine whose cores
are busy with CPU-bound work, Linux's EEVDF scheduler lets a woken thread wait until the
running task ends its slice (a few ms) before it runs, so every delivery could be late by
that much. A thread may ask for a shorter slice (``sched_setattr`` with a
``sched_runtime`` for SCHED_OTHER, no privilege needed): it then gets an earlier deadline
and preempts the CPU-bound task when it wakes, without getting a larger share of the CPU.
The call keeps the thread's policy and nice value; on other kernels and systems it is
ignored or fails, and nothing changes.

A short slice still waits for a core that another woken task got first. Where the
process may use real-time scheduling (``CAP_SYS_NICE`` or an ``RLIMIT_RTPRIO`` of 1 or
more), a pump that holds delayed bytes waits for them at ``SCHED_FIFO`` priority 1
(:func:`hold_realtime`), the lowest real-time level, so that it runs as soon as they are
due, ahead of any CPU-bound task. It goes back to its short slice as soon as nothing
delayed is left. Elsewhere the kernel refuses, once per thread, and nothing changes.
"""

from __future__ import annotations

import os
import platform
import struct
import sys
import threading
from typing import Any

SLICE_NS = 100_000  # the shortest slice Linux accepts (0.1 ms)

# sched_setattr's number where Python itself does not name it.
_SYSCALLS = {"x86_64": 314, "aarch64": 274, "arm64": 274, "riscv64": 274}
_NR = _SYSCALLS.get(platform.machine()) if sys.platform.startswith("linux") else None
_ATTR_SIZE = 56  # struct sched_attr, version 1
_OTHER, _FIFO = 0, 1
_RESET_ON_FORK = 0x01  # a child process never inherits the real-time policy
_lock = threading.Lock()
_syscall: list[Any] = []  # libc's syscall(), loaded on first use (ctypes costs ~10 ms)
_thread = threading.local()  # per pump thread: its nice value, whether it is real-time


def ask_for_short_slice() -> bool:
    """Ask for a short slice for the calling thread; True when the kernel took it."""
    if _NR is None:
        return False
    try:
        _thread.nice = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    except OSError:
        return False
    return _set(_OTHER, 0, _thread.nice, 0, SLICE_NS)


def hold_realtime(wanted: bool) -> None:
    """Run the calling pump thread at ``SCHED_FIFO`` priority 1 (``wanted``) or back on
    its short slice. Cheap when nothing changes; a refusal is remembered per thread."""
    state = _thread.__dict__
    if state.get("realtime", False) == wanted or state.get("refused") or "nice" not in state:
        return
    if wanted:
        taken = _set(_FIFO, _RESET_ON_FORK, 0, 1, 0)
        state["refused"] = not taken
    else:
        taken = _set(_OTHER, 0, state["nice"], 0, SLICE_NS)
    if taken:
        state["realtime"] = wanted


def _set(policy: int, flags: int, nice: int, priority: int, runtime_ns: int) -> bool:
    if _NR is None:
        return False
    call = _load()
    if call is None:
        return False
    import ctypes

    # size, policy, flags, nice, priority, runtime, deadline, period, util_min, util_max.
    attr = struct.pack(
        "=IIQiIQQQII", _ATTR_SIZE, policy, flags, nice, priority, runtime_ns, 0, 0, 0, 0
    )
    buffer = ctypes.create_string_buffer(attr, _ATTR_SIZE)
    return int(call(_NR, 0, buffer, 0)) == 0


def _load() -> Any:
    with _lock:
        if not _syscall:
            try:
                import ctypes

                _syscall.append(ctypes.CDLL(None, use_errno=True).syscall)
            except (OSError, AttributeError, ImportError):
                _syscall.append(None)
        return _syscall[0]
