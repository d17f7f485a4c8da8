"""Short scheduling slices for the threads that move a proxy's bytes (Linux 6.12+).

A toxic's delayed bytes leave when their pump thread wakes up. On a machine whose cores
are busy with CPU-bound work, Linux's EEVDF scheduler lets a woken thread wait until the
running task ends its slice (a few ms) before it runs, so every delivery could be late by
that much. A thread may ask for a shorter slice (``sched_setattr`` with a
``sched_runtime`` for SCHED_OTHER, no privilege needed): it then gets an earlier deadline
and preempts the CPU-bound task when it wakes, without getting a larger share of the CPU.
The call keeps the thread's policy and nice value; on other kernels and systems it is
ignored or fails, and nothing changes.
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
_lock = threading.Lock()
_syscall: list[Any] = []  # libc's syscall(), loaded on first use (ctypes costs ~10 ms)


def ask_for_short_slice() -> bool:
    """Ask for a short slice for the calling thread; True when the kernel took it."""
    if _NR is None:
        return False
    call = _load()
    if call is None:
        return False
    try:
        nice = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    except OSError:
        return False
    import ctypes

    # size, policy (SCHED_OTHER), flags, nice (unchanged), priority, runtime, deadline,
    # period, util_min, util_max.
    attr = struct.pack("=IIQiIQQQII", _ATTR_SIZE, 0, 0, nice, 0, SLICE_NS, 0, 0, 0, 0)
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
