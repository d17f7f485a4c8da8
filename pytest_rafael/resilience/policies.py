"""The stateful policies behind the genes: circuit breaker, token bucket, bulkhead and
result cache, plus exception/callable resolution. Thread-safe; locks are taken only off
the success path where possible (a closed breaker's success is one attribute check)."""

from __future__ import annotations

import asyncio
import builtins
import importlib
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable
from typing import Any

from pytest_rafael.genome.genes import GenomeError
from pytest_rafael.resilience.counters import Counters
from pytest_rafael.resilience.delivery import NOT_DELIVERED, NotDelivered
from pytest_rafael.resilience.errors import BulkheadFull, CircuitOpenError, RateLimitExceeded

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


def resolve_object(path: str, where: str) -> Any:
    """``pkg.mod:attr``, ``pkg.mod.attr`` or a builtin name -> the object."""
    if ":" in path:
        mod_name, _, attr = path.partition(":")
    elif "." in path:
        mod_name, _, attr = path.rpartition(".")
    else:
        if path == NOT_DELIVERED:
            return NotDelivered
        if hasattr(builtins, path):
            return getattr(builtins, path)
        raise GenomeError(f"{where}: no builtin named {path!r}")
    try:
        obj: Any = importlib.import_module(mod_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise GenomeError(f"{where}: cannot import {path!r}: {exc}") from None
    return obj


def resolve_exceptions(names: tuple[str, ...], where: str) -> tuple[type[BaseException], ...]:
    out: list[type[BaseException]] = []
    for name in names:
        obj = resolve_object(name, where)
        if not (isinstance(obj, type) and issubclass(obj, BaseException)):
            raise GenomeError(f"{where}: {name!r} is not an exception type")
        out.append(obj)
    return tuple(out)


class CircuitBreaker:
    """Closed -> open after ``failure_threshold`` consecutive failures (or, when
    ``failure_rate`` > 0, when that share of the last ``window`` calls failed, once at
    least ``min(window, failure_threshold)`` calls are in the window); open -> half-open
    after ``reset_timeout`` s; half-open lets ``half_open_max_calls`` trial calls through
    and closes after as many successes, or re-opens on a failure."""

    def __init__(
        self,
        failure_threshold: int,
        failure_rate: float,
        window: int,
        reset_timeout: float,
        half_open_max_calls: int,
        counters: Counters,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.failure_threshold = failure_threshold
        self.failure_rate = failure_rate
        self.reset_timeout = reset_timeout
        self.half_open_max_calls = half_open_max_calls
        self.counters = counters
        self.clock = clock
        self.state = CLOSED
        # True while nothing needs recording on success (closed, count mode, no recent
        # failure): the pipeline then skips on_success() altogether.
        self.quiet = failure_rate <= 0
        self.failures = 0  # consecutive (count mode) or in the window (rate mode)
        self._window: deque[bool] | None = deque(maxlen=window) if failure_rate > 0 else None
        self._min_calls = min(window, failure_threshold)
        self._opened_at = 0.0
        self._trials = 0
        self._trial_ok = 0
        self._lock = threading.Lock()

    def before(self) -> None:
        """Called before an attempt when the breaker is not closed."""
        with self._lock:
            self.quiet = False
            if self.state == OPEN:
                if self.clock() - self._opened_at < self.reset_timeout:
                    raise CircuitOpenError("circuit breaker is open")
                self.state, self._trials, self._trial_ok = HALF_OPEN, 0, 0
            if self.state == HALF_OPEN:
                if self._trials >= self.half_open_max_calls:
                    raise CircuitOpenError("circuit breaker is half-open; trial calls busy")
                self._trials += 1

    def on_success(self) -> None:
        if self.state == CLOSED:
            if self._window is not None:
                with self._lock:
                    if len(self._window) == self._window.maxlen and self._window[0]:
                        self.failures -= 1
                    self._window.append(False)
            elif self.failures:
                self.failures = 0
                self.quiet = True
            return
        with self._lock:
            if self.state == HALF_OPEN:
                self._trial_ok += 1
                if self._trial_ok >= self.half_open_max_calls:
                    self.state, self.failures = CLOSED, 0
                    if self._window is not None:
                        self._window.clear()
                    else:
                        self.quiet = True

    def on_failure(self) -> None:
        with self._lock:
            self.quiet = False
            if self.state == HALF_OPEN:
                self._trip()
            elif self.state == CLOSED:
                if self._window is None:
                    self.failures += 1
                    if self.failures >= self.failure_threshold:
                        self._trip()
                else:
                    if len(self._window) == self._window.maxlen and self._window[0]:
                        self.failures -= 1
                    self._window.append(True)
                    self.failures += 1
                    n = len(self._window)
                    if n >= self._min_calls and self.failures / n >= self.failure_rate:
                        self._trip()

    def _trip(self) -> None:
        self.state, self._opened_at = OPEN, self.clock()
        self.counters.breaker_trips += 1


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved up; a caller waits at most
    ``max_wait`` s for a token, else :class:`RateLimitExceeded`."""

    def __init__(self, rate: float, burst: int, max_wait: float) -> None:
        self.rate, self.burst, self.max_wait = rate, float(burst), max_wait
        self._tokens = float(burst)
        self._stamp = time.monotonic()
        self._lock = threading.Lock()

    def _take(self) -> float:
        """Take a token now (return 0) or reserve one and return the wait, or -1."""
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return 0.0
            wait = (1.0 - self._tokens) / self.rate
            if wait > self.max_wait:
                return -1.0
            self._tokens -= 1.0  # reserved: the caller sleeps until it is earned
            return wait

    def acquire(self) -> None:
        wait = self._take()
        if wait < 0:
            raise RateLimitExceeded(f"rate limit of {self.rate:g}/s exceeded")
        if wait:
            time.sleep(wait)

    async def acquire_async(self) -> None:
        wait = self._take()
        if wait < 0:
            raise RateLimitExceeded(f"rate limit of {self.rate:g}/s exceeded")
        if wait:
            await asyncio.sleep(wait)


class Bulkhead:
    """At most ``max_concurrent`` calls at once; up to ``max_queue`` more wait for a slot
    (no longer than the attempt's remaining timeout, if any); beyond that,
    :class:`BulkheadFull`. Sync and async callers have separate slots (a thread cannot
    wait on an event loop's semaphore)."""

    def __init__(self, max_concurrent: int, max_queue: int) -> None:
        self.max_concurrent, self.max_queue = max_concurrent, max_queue
        self._sem = threading.Semaphore(max_concurrent)
        self._waiting = 0
        self._lock = threading.Lock()
        self._async_sem: asyncio.Semaphore | None = None

    def _enqueue(self) -> None:
        with self._lock:
            if self._waiting >= self.max_queue:
                raise BulkheadFull(f"bulkhead full ({self.max_concurrent} running)")
            self._waiting += 1

    def _dequeue(self) -> None:
        with self._lock:
            self._waiting -= 1

    def acquire(self, timeout: float | None) -> None:
        if self._sem.acquire(blocking=False):
            return
        self._enqueue()
        try:
            ok = self._sem.acquire(timeout=timeout) if timeout is not None else self._sem.acquire()
        finally:
            self._dequeue()
        if not ok:
            raise BulkheadFull(f"bulkhead full ({self.max_concurrent} running)")

    def release(self) -> None:
        self._sem.release()

    async def acquire_async(self) -> None:
        if self._async_sem is None:
            self._async_sem = asyncio.Semaphore(self.max_concurrent)
        sem = self._async_sem
        if not sem.locked():
            await sem.acquire()
            return
        self._enqueue()
        try:
            await sem.acquire()
        finally:
            self._dequeue()

    def release_async(self) -> None:
        assert self._async_sem is not None
        self._async_sem.release()


_MISS = object()


class ResultCache:
    """Results of successful calls by (function, arguments), ``ttl`` seconds, LRU beyond
    ``max_size``. Calls with unhashable arguments bypass it. ``clock``: as for
    :class:`CircuitBreaker` (tests pass a fake one)."""

    def __init__(
        self, ttl: float, max_size: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl, self.max_size = ttl, max_size
        self.clock = clock
        self._data: OrderedDict[Hashable, tuple[float, Any]] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def key(fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Hashable | None:
        k = (fn, args, tuple(sorted(kwargs.items()))) if kwargs else (fn, args)
        try:
            hash(k)
        except TypeError:
            return None
        return k

    def get(self, key: Hashable) -> Any:
        with self._lock:
            item = self._data.get(key)
            if item is None:
                return _MISS
            if item[0] < self.clock():
                del self._data[key]
                return _MISS
            self._data.move_to_end(key)
            return item[1]

    def put(self, key: Hashable, value: Any) -> None:
        with self._lock:
            self._data[key] = (self.clock() + self.ttl, value)
            self._data.move_to_end(key)
            while len(self._data) > self.max_size:
                self._data.popitem(last=False)


MISS = _MISS
