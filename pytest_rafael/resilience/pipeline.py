"""A genome compiled into one call pipeline.

Order, outermost first: cache > fallback > retry > timeout > circuit breaker >
rate limit > bulkhead > the call (the issue's list, read innermost first).
- A cache hit skips everything; only real successes are cached, never fallback values.
- The fallback sees a call's final failure, after every retry.
- Retry repeats whole attempts; each attempt has its own timeout, asks the breaker, takes
  a rate-limit token and a bulkhead slot. An open breaker ends the retries at once (its
  CircuitOpenError goes to the fallback or the caller): retrying it only burns time.
- A timed-out attempt counts as a breaker failure. Local rejections (open breaker, rate
  limit, full bulkhead) do not: they say nothing about the dependency.

The whole pipeline is one hand-written loop rather than nested wrappers: Python pays
about 0.1 us per extra call frame, and the success path must stay within ~1-2 us.
"""

from __future__ import annotations

import asyncio
import inspect
import random
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar, Token
from time import perf_counter
from typing import Any

from pytest_rafael.genome.genes import GenomeError
from pytest_rafael.genome.genome import Genome
from pytest_rafael.resilience.counters import Counters
from pytest_rafael.resilience.delivery import not_delivered
from pytest_rafael.resilience.errors import (
    LOCAL_REJECTIONS,
    AttemptTimeout,
    BulkheadFull,
    CircuitOpenError,
)
from pytest_rafael.resilience.policies import (
    CLOSED,
    HALF_OPEN,
    MISS,
    Bulkhead,
    CircuitBreaker,
    ResultCache,
    TokenBucket,
    resolve_exceptions,
    resolve_object,
)
from pytest_rafael.resilience.watchdog import (
    _current_task,
    _last,
    _running_loop,
    _uncancel,
    _watchdog,
)

# The deadline (perf_counter seconds) of the innermost timed attempt running in this
# context: set when an attempt with a timeout gene starts, reset when it ends. A
# ContextVar follows the call into coroutines of the same task and into
# ``asyncio.to_thread``; it costs a set and a reset per timed attempt, nothing per
# untimed one.
_DEADLINE: ContextVar[float | None] = ContextVar("rafael_attempt_deadline", default=None)


def current_timeout() -> float | None:
    """Seconds left of the current attempt's ``timeout`` gene, or ``None`` outside a
    timed attempt. Clients pass it on as a socket/HTTP timeout: that is how a sync call
    is really interrupted (see docs/genome.md).

    Nested timed attempts (a decorated function calling another) give the earliest
    deadline: the inner call cannot outlive the outer attempt's budget. Work handed to
    another thread sees it only if the context goes along (``asyncio.to_thread``,
    ``contextvars.copy_context().run``); ``run_in_executor`` does not carry it -- pass
    the value along there."""
    deadline = _DEADLINE.get()
    if deadline is None:
        return None
    return max(0.0, deadline - perf_counter())


def _start_timed(t0: float, tmo: float) -> Token[float | None]:
    """Enter a timed attempt: its deadline, or an enclosing attempt's if earlier."""
    deadline = t0 + tmo
    outer = _DEADLINE.get()
    return _DEADLINE.set(deadline if outer is None or deadline < outer else outer)


class Pipeline:
    def __init__(
        self, genome: Genome, counters: Counters, *, idempotent: bool | None = None
    ) -> None:
        m = genome.module
        g = genome.genes
        self.genome = genome
        # Declared non-idempotent: whatever the retry gene lists, only an error that
        # proves nothing was sent is retried (a second enqueue would be a duplicate job).
        self.resend_safe = idempotent is not False
        self.counters = counters
        self.timeout: float | None = g["timeout"]["seconds"] if "timeout" in g else None
        self.breaker: CircuitBreaker | None = None
        if "circuit_breaker" in g:
            p = g["circuit_breaker"].params
            self.breaker = CircuitBreaker(
                p["failure_threshold"],
                p["failure_rate"],
                p["window"],
                p["reset_timeout"],
                p["half_open_max_calls"],
                counters,
            )
        self.rate: TokenBucket | None = None
        if "rate_limit" in g:
            p = g["rate_limit"].params
            self.rate = TokenBucket(p["rate"], p["burst"], p["max_wait"])
        self.bulkhead: Bulkhead | None = None
        if "bulkhead" in g:
            p = g["bulkhead"].params
            self.bulkhead = Bulkhead(p["max_concurrent"], p["max_queue"])
        self.max_attempts = 1
        self.retry_on: tuple[type[BaseException], ...] = ()
        if "retry" in g:
            p = g["retry"].params
            self.max_attempts = p["max_attempts"]
            self.base_delay, self.max_delay = p["base_delay"], p["max_delay"]
            self.multiplier, self.jitter = p["multiplier"], p["jitter"]
            self.retry_on = resolve_exceptions(p["on"], f"{m}.genes.retry.on")
        self.fallback_on: tuple[type[BaseException], ...] | None = None
        self.fallback_value: Any = None
        self.fallback_fn: Callable[..., Any] | None = None
        if "fallback" in g:
            p = g["fallback"].params
            self.fallback_on = resolve_exceptions(p["on"], f"{m}.genes.fallback.on")
            self.fallback_value = p["value"]
            if p["callable"] is not None:
                fn = resolve_object(p["callable"], f"{m}.genes.fallback.callable")
                if not callable(fn):
                    raise GenomeError(
                        f"{m}.genes.fallback.callable: {p['callable']!r} is not callable"
                    )
                self.fallback_fn = fn
        self.cache: ResultCache | None = None
        if "cache" in g:
            p = g["cache"].params
            self.cache = ResultCache(p["ttl"], p["max_size"])
        self._rng = random.Random()
        # Genes that need work before every attempt or a cache lookup: no fast path.
        self.complex = self.cache is not None or self.rate is not None or self.bulkhead is not None

    def delay(self, attempt: int) -> float:
        """Backoff before attempt ``attempt + 1``."""
        d: float = min(self.max_delay, self.base_delay * self.multiplier ** (attempt - 1))
        if self.jitter:
            d *= 1.0 + self.jitter * self._rng.uniform(-1.0, 1.0)
        return max(0.0, d)

    def _retryable(self, err: BaseException, attempt: int) -> bool:
        return (
            attempt < self.max_attempts
            and isinstance(err, self.retry_on)
            and not isinstance(err, CircuitOpenError)
            and (self.resend_safe or not_delivered(err))
        )

    def _failed(self, err: BaseException, now: float) -> None:
        c = self.counters
        c.attempt_failures += 1
        if isinstance(err, LOCAL_REJECTIONS):
            c.rejections += 1
            if isinstance(err, BulkheadFull):
                c.bulkhead_rejections += 1
        else:
            c.last_failure, c.recovered_at = now, None
            if self.breaker is not None:
                self.breaker.on_failure()

    def _fallback_value(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        self.counters.fallbacks += 1
        if self.fallback_fn is not None:
            return self.fallback_fn(*args, **kwargs)
        return self.fallback_value

    # -- sync -------------------------------------------------------------------------

    def run_sync(
        self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        """One call. The common case (no cache, rate limit or bulkhead; breaker closed;
        first attempt succeeds) runs straight through here; anything else continues in
        :meth:`_run_sync_full`."""
        if self.complex:
            return self._run_sync_full(fn, args, kwargs)
        c = self.counters
        c.calls += 1
        br = self.breaker
        if br is not None and br.state is not CLOSED:
            return self._run_sync_full(fn, args, kwargs, counted=True)
        tmo = self.timeout
        t0 = perf_counter()
        if tmo is None:
            try:
                result = fn(*args, **kwargs)
            except Exception as exc:
                return self._retry_sync(exc, fn, args, kwargs, t0, perf_counter())
        else:
            token = _start_timed(t0, tmo)
            try:
                result = fn(*args, **kwargs)
            except Exception as exc:
                err: Exception | None = exc
            else:
                err = None
            finally:
                _DEADLINE.reset(token)  # before a retry sets its own deadline
            if err is not None:
                now = perf_counter()
                if _cut_by_budget(err, now - t0, tmo):
                    c.timeouts += 1
                return self._retry_sync(err, fn, args, kwargs, t0, now)
        now = perf_counter()
        elapsed = now - t0
        if tmo is not None and elapsed > tmo:
            c.timeouts += 1
            late = AttemptTimeout(f"attempt took {elapsed:.3f}s > timeout {tmo:g}s")
            return self._retry_sync(late, fn, args, kwargs, t0, now)
        if br is not None and not br.quiet:
            br.on_success()
        _count_success(c, t0, t0, now)
        return result

    def _retry_sync(
        self,
        err: Exception,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        start: float,
        now: float,
    ) -> Any:
        """The first attempt of :meth:`run_sync` failed: record it, then retry."""
        self._failed(err, now)
        if self._retryable(err, 1):
            delay = self.delay(1)
            if delay > 0.0:  # time.sleep(0) still costs a syscall and a GIL round trip
                time.sleep(delay)
            self.counters.retries += 1
            return self._run_sync_full(fn, args, kwargs, counted=True, start=start, done=1)
        return self._give_up_sync(err, start, args, kwargs)

    def _run_sync_full(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        counted: bool = False,
        start: float | None = None,
        done: int = 0,
    ) -> Any:
        c = self.counters
        cache = self.cache
        key = None
        if not counted:
            c.calls += 1
            if cache is not None:
                key = cache.key(fn, args, kwargs)
                if key is not None:
                    hit = cache.get(key)
                    if hit is not MISS:
                        c.cache_hits += 1
                        return hit
        br, rl, bh, tmo = self.breaker, self.rate, self.bulkhead, self.timeout
        t0 = perf_counter()
        if start is None:
            start = t0
        attempt = done
        while True:
            attempt += 1
            held = False
            token = None if tmo is None else _start_timed(t0, tmo)
            try:
                if br is not None and br.state is not CLOSED:
                    br.before()
                    if br.state is HALF_OPEN:  # let through as a trial: the probe path
                        c.half_open_probes += 1
                if rl is not None:
                    rl.acquire()
                if bh is not None:
                    bh.acquire(current_timeout())
                    held = True
                result = fn(*args, **kwargs)
            except Exception as exc:
                err: Exception | None = exc
            else:
                err = None
            finally:
                if held:
                    bh.release()  # type: ignore[union-attr]
                if token is not None:
                    _DEADLINE.reset(token)
            now = perf_counter()
            if err is not None and _cut_by_budget(err, now - t0, tmo):
                c.timeouts += 1
            if err is None:
                if tmo is not None and now - t0 > tmo:
                    # The call ignored its budget (it did not use current_timeout()):
                    # the late result is discarded, as a waiting caller would have.
                    c.timeouts += 1
                    err = AttemptTimeout(f"attempt took {now - t0:.3f}s > timeout {tmo:g}s")
                else:
                    if br is not None and not br.quiet:
                        br.on_success()
                    _count_success(c, start, t0, now)
                    if key is not None:
                        cache.put(key, result)  # type: ignore[union-attr]
                    return result
            self._failed(err, now)
            if self._retryable(err, attempt):
                delay = self.delay(attempt)
                if delay > 0.0:
                    time.sleep(delay)
                c.retries += 1
                t0 = perf_counter()
                continue
            return self._give_up_sync(err, start, args, kwargs)

    def _give_up_sync(
        self, err: Exception, start: float, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        c = self.counters
        elapsed = perf_counter() - start
        c.latency_total += elapsed
        c.latency_max = max(c.latency_max, elapsed)
        if self.fallback_on is not None and isinstance(err, self.fallback_on):
            return self._fallback_value(args, kwargs)
        c.failures += 1
        raise err

    # -- async ------------------------------------------------------------------------

    async def run_async(
        self, fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        c = self.counters
        c.calls += 1
        cache = self.cache
        key = None
        if cache is not None:
            key = cache.key(fn, args, kwargs)
            if key is not None:
                hit = cache.get(key)
                if hit is not MISS:
                    c.cache_hits += 1
                    return hit
        br, rl, bh, tmo = self.breaker, self.rate, self.bulkhead, self.timeout
        start = t0 = perf_counter()
        attempt = 0
        while True:
            attempt += 1
            held = False
            entry: list[Any] | None = None
            token: Token[float | None] | None = None
            if tmo is not None:
                # _Watchdog.watch(), inlined: this runs on every timed async call.
                wd = _last[1]
                if _last[0] is not _running_loop() or wd is None:
                    wd = _watchdog()
                deadline = wd.time() + tmo
                entry = [deadline, _current_task(), False]
                wd.entries.append(entry)
                if deadline < wd.armed_at or len(wd.entries) > 4096:
                    wd.arm(deadline)
                token = _start_timed(t0, tmo)
            try:
                if br is not None and br.state is not CLOSED:
                    br.before()
                    if br.state is HALF_OPEN:  # let through as a trial: the probe path
                        c.half_open_probes += 1
                if rl is not None:
                    await rl.acquire_async()
                if bh is not None:
                    await bh.acquire_async()
                    held = True
                result = await fn(*args, **kwargs)
            except asyncio.CancelledError:
                if entry is None or not entry[2]:
                    raise  # cancelled by someone else: not ours to swallow
                err: Exception | None = AttemptTimeout(f"attempt exceeded timeout {tmo:g}s")
                _uncancel()
            except Exception as exc:
                err = exc
            else:
                err = None
            finally:
                if entry is not None:
                    entry[0] = None  # done: the watchdog forgets it
                if token is not None:
                    _DEADLINE.reset(token)
                if held:
                    bh.release_async()  # type: ignore[union-attr]
            now = perf_counter()
            if err is None:
                if br is not None and not br.quiet:
                    br.on_success()
                _count_success(c, start, t0, now)
                if key is not None:
                    cache.put(key, result)  # type: ignore[union-attr]
                return result
            if isinstance(err, AttemptTimeout) or _cut_by_budget(err, now - t0, tmo):
                c.timeouts += 1
            self._failed(err, now)
            if self._retryable(err, attempt):
                delay = self.delay(attempt)
                if delay > 0.0:  # each attempt awaits the call, so no yield is needed
                    await asyncio.sleep(delay)
                c.retries += 1
                t0 = perf_counter()
                continue
            elapsed = perf_counter() - start
            c.latency_total += elapsed
            c.latency_max = max(c.latency_max, elapsed)
            if self.fallback_on is not None and isinstance(err, self.fallback_on):
                value = self._fallback_value(args, kwargs)
                if inspect.isawaitable(value):
                    value = await value
                return value
            c.failures += 1
            raise err


def _cut_by_budget(err: Exception, elapsed: float, tmo: float | None) -> bool:
    """Did the timeout gene end an attempt that raised? It raised after its budget ran
    out, or raised a timeout as the budget ran out: a socket given ``current_timeout()``
    times out at the deadline, and that is the timeout gene firing, just as a late return
    is. (The watchdog's own :class:`AttemptTimeout` is counted where it is made.)"""
    if tmo is None or isinstance(err, AttemptTimeout):
        return False
    return elapsed > tmo or (
        isinstance(err, TimeoutError) and elapsed >= tmo - min(0.005, tmo / 100)
    )


def _count_failure(c: Counters, start: float) -> None:
    now = perf_counter()
    c.failures += 1
    c.attempt_failures += 1
    c.last_failure, c.recovered_at = now, None
    c.latency_total += now - start


def _count_success(c: Counters, start: float, attempt_start: float, now: float) -> None:
    """A call that succeeded: ``start`` of the call (its latency, retries included),
    ``attempt_start`` of the attempt that succeeded (the slowest good attempt)."""
    elapsed = now - start
    c.latency_total += elapsed
    if elapsed > c.latency_max:
        c.latency_max = elapsed
    if now - attempt_start > c.ok_latency_max:
        c.ok_latency_max = now - attempt_start
    if c.last_failure is not None and c.recovered_at is None:
        c.recovered_at = now


def bare_sync(
    c: Counters, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """A module without genes: the call as is, counted."""
    c.calls += 1
    start = perf_counter()
    try:
        result = fn(*args, **kwargs)
    except Exception:
        _count_failure(c, start)
        raise
    _count_success(c, start, start, perf_counter())
    return result


async def bare_async(
    c: Counters, fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    c.calls += 1
    start = perf_counter()
    try:
        result = await fn(*args, **kwargs)
    except Exception:
        _count_failure(c, start)
        raise
    _count_success(c, start, start, perf_counter())
    return result
