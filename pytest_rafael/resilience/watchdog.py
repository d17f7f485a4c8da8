"""One timer thread per event loop that cancels async attempts past their
deadline, re-armed for the next deadline; and the un-cancel of our own
timeouts."""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Callable
from typing import Any


class _Watchdog:
    """Async attempt timeouts for one event loop with one armed timer.

    ``asyncio.timeout`` costs ~15-20 us per call on this machine (a TimerHandle per call,
    and cancelled handles pile up in the loop's heap). Here an attempt registers a
    ``[deadline, task, fired]`` entry (a list append); a single ``call_at`` timer armed
    for the earliest deadline cancels the tasks whose deadline has passed and re-arms.
    A finished attempt just clears its deadline; the timer drops such entries.
    """

    __slots__ = ("armed_at", "entries", "handle", "loop", "time")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        # The default loops' time() is a Python method around time.monotonic(): call the
        # clock directly and save a frame per timed call.
        base_time = getattr(asyncio.BaseEventLoop, "time", None)
        same = getattr(type(loop), "time", None) is base_time
        self.time: Callable[[], float] = time.monotonic if same else loop.time
        self.entries: list[list[Any]] = []
        self.handle: asyncio.TimerHandle | None = None
        self.armed_at = float("inf")

    def watch(self, seconds: float) -> list[Any]:
        deadline = self.time() + seconds
        entry = [deadline, _current_task(), False]
        self.entries.append(entry)
        if deadline < self.armed_at or len(self.entries) > 4096:
            self.arm(deadline)
        return entry

    def arm(self, deadline: float) -> None:
        """Arm the timer for ``deadline`` if earlier; compact a long list of entries."""
        if deadline < self.armed_at:
            if self.handle is not None:
                self.handle.cancel()
            self.handle = self.loop.call_at(deadline, self._fire)
            self.armed_at = deadline
        if len(self.entries) > 4096:
            self.entries = [e for e in self.entries if e[0] is not None]

    def _fire(self) -> None:
        self.handle, self.armed_at = None, float("inf")
        now = self.loop.time()
        live: list[list[Any]] = []
        earliest = float("inf")
        for entry in self.entries:
            deadline = entry[0]
            if deadline is None:
                continue
            if deadline <= now:
                entry[0], entry[2] = None, True
                if entry[1] is not None:
                    entry[1].cancel()
            else:
                live.append(entry)
                earliest = min(earliest, deadline)
        self.entries = live
        if live:
            self.handle = self.loop.call_at(earliest, self._fire)
            self.armed_at = earliest


_last: tuple[asyncio.AbstractEventLoop | None, _Watchdog | None] = (None, None)

_watchdogs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Watchdog] = (
    weakref.WeakKeyDictionary()
)

_current_task = asyncio.current_task

_running_loop = asyncio.get_running_loop


def _watchdog() -> _Watchdog:
    global _last
    loop = _running_loop()
    last_loop, wd = _last
    if loop is last_loop and wd is not None:
        return wd
    wd = _watchdogs.get(loop)
    if wd is None:
        wd = _watchdogs[loop] = _Watchdog(loop)
    _last = (loop, wd)
    return wd


def _uncancel() -> None:
    # Python 3.11+: undo our cancel() in the task's count so that an enclosing
    # asyncio.timeout() or TaskGroup does not mistake it for its own.
    task = asyncio.current_task()
    uncancel = getattr(task, "uncancel", None)
    if uncancel is not None:
        uncancel()
