"""The pooled threads that run a link's connections and pumps, and the
waker that interrupts a pump's poll when its toxics change."""

from __future__ import annotations

import _thread
import contextlib
import os
import queue
import struct
import threading
import traceback
from collections.abc import Callable

from pytest_rafael.toxiproxy import slices


class _Waker:
    """A pollable flag another thread can raise; safe to raise after it is closed."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        if hasattr(os, "eventfd"):
            fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
            self._read_fd, self._write_fd = fd, fd
        else:  # pragma: no cover - non-Linux
            self._read_fd, self._write_fd = os.pipe()
            os.set_blocking(self._read_fd, False)
            os.set_blocking(self._write_fd, False)

    def fileno(self) -> int:
        return self._read_fd

    def set(self) -> None:
        # The lock stops a raise from writing into a recycled fd number after close().
        with self._lock:
            if self._write_fd >= 0:
                with contextlib.suppress(BlockingIOError):
                    os.write(self._write_fd, struct.pack("=Q", 1))

    def clear(self) -> None:
        with contextlib.suppress(BlockingIOError):
            os.read(self._read_fd, 4096)

    def close(self) -> None:
        with self._lock:
            fds = {self._read_fd, self._write_fd}
            self._read_fd = self._write_fd = -1
        for fd in fds:
            os.close(fd)


class _WorkerPool:
    """Daemon threads that run submitted calls and wait for the next one.

    ``idle`` counts waiting workers minus queued calls: a submit that finds one takes it,
    otherwise it starts a worker without waiting for it to run. A worker that waited
    ``idle_timeout`` seconds for nothing leaves, unless a queued call is owed to it.
    """

    def __init__(self, idle_timeout: float = 30.0) -> None:
        self._calls: queue.SimpleQueue[Callable[[], object]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0
        self._idle_timeout = idle_timeout
        self.busy = 0  # workers running a call now (pumps, accept loops)

    def submit(self, call: Callable[[], object]) -> None:
        with self._lock:
            spawn = self._idle == 0
            if not spawn:
                self._idle -= 1
        self._calls.put(call)
        if spawn:
            _thread.start_new_thread(self._work, ())

    def _work(self) -> None:
        # Pumps deliver delayed bytes when they wake: a short slice lets them run then,
        # not after the CPU-bound task that holds the core (see slices.py).
        slices.ask_for_short_slice()
        while True:
            try:
                call = self._calls.get(timeout=self._idle_timeout)
            except queue.Empty:
                with self._lock:
                    if self._idle > 0:
                        self._idle -= 1
                        return
                continue  # a call was queued for this worker: take it
            with self._lock:
                self.busy += 1
            try:
                call()
            except Exception:  # pragma: no cover - a bug: say so, as a dying thread would
                traceback.print_exc()
            del call
            slices.hold_realtime(False)  # a pump may end while it waits for delayed bytes
            with self._lock:
                self.busy -= 1
                self._idle += 1


POOL = _WorkerPool()
