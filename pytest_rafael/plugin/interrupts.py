"""Ctrl-C and SIGTERM during a chaos run.

SIGTERM (a CI job cancelled) becomes ``KeyboardInterrupt``, so pytest unwinds the
running test and every fault is reverted on the way out. While faults are being reverted
and while the run is being recorded, both signals are held back until the step is done:
an interruption must not leave a toxic in place or half an audit record. What
interrupted the run is kept for the partial report.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from typing import Any

_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_reason: list[str] = []  # what interrupted this run, once it was interrupted


def reason() -> str | None:
    """``"SIGTERM"`` or ``"SIGINT"`` when a signal interrupted the run, else None."""
    return _reason[0] if _reason else None


def reason_or_sigint() -> str:
    """What interrupted the run; a Ctrl-C reaches Python as KeyboardInterrupt through the
    default SIGINT handler, without our handler having noted it."""
    return reason() or "SIGINT"


def note(what: str) -> None:
    if not _reason:
        _reason.append(what)


def terminate_gracefully_on_sigterm() -> None:
    """Turn SIGTERM into KeyboardInterrupt. A handler the user installed is left alone."""
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return

    def interrupt(signum: int, frame: Any) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM kills at once
        note("SIGTERM")
        raise KeyboardInterrupt("SIGTERM")

    # ValueError: not the main thread (pytest embedded in something else); leave it be.
    with contextlib.suppress(ValueError):
        signal.signal(signal.SIGTERM, interrupt)


@contextlib.contextmanager
def held() -> Iterator[list[int]]:
    """Hold SIGINT and SIGTERM back for the block; yields the signals that came. Outside
    the main thread signals cannot be handled here, so the block runs as it is."""
    came: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield came
        return
    previous = {s: signal.getsignal(s) for s in _SIGNALS}

    def hold(signum: int, frame: Any) -> None:
        came.append(signum)
        note("SIGTERM" if signum == signal.SIGTERM else "SIGINT")

    for s in _SIGNALS:
        signal.signal(s, hold)
    try:
        yield came
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Hold signals for a step that must not be cut in half (reverting faults, creating
    or deleting a proxy, an audit write), then deliver one as KeyboardInterrupt."""
    with held() as came:
        try:
            yield
        finally:
            if came:  # even when the step failed: the user asked the run to stop
                raise KeyboardInterrupt(signal.Signals(came[0]).name)


def calm_until_exit() -> dict[int, Any]:
    """Once the run is recorded, a signal only ends the process: the first one is noted
    (pytest is printing its summary and shutting down, which takes a moment), a second
    one ends the process at once, without a traceback. Returns the handlers replaced."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    previous: dict[int, Any] = {s: signal.getsignal(s) for s in _SIGNALS}
    seen: list[int] = []

    def late(signum: int, frame: Any) -> None:
        note("SIGTERM" if signum == signal.SIGTERM else "SIGINT")
        if seen:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
        seen.append(signum)

    for s in _SIGNALS:
        signal.signal(s, late)
    return previous


def restore(handlers: dict[int, Any]) -> None:
    """Put back the handlers :func:`calm_until_exit` replaced (pytest run in-process)."""
    for signum, handler in handlers.items():
        with contextlib.suppress(ValueError, TypeError):
            signal.signal(signum, handler)
