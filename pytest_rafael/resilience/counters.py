"""Cheap per-module counters for the fitness terms.

Plain attribute increments, no lock: under free threading two increments may race and
lose one count. ``successes`` is derived as ``calls - failures``, so a snapshot taken
while calls are still running counts them as successes: read counters at rest.
They feed a fitness estimate, not an invoice, so the success path stays lock-free.
"""

from __future__ import annotations

from time import perf_counter
from typing import Any


class Counters:
    __slots__ = (
        "attempt_failures",
        "breaker_trips",
        "bulkhead_rejections",
        "cache_hits",
        "calls",
        "epoch",
        "failures",
        "fallbacks",
        "half_open_probes",
        "last_failure",
        "latency_max",
        "latency_total",
        "ok_latency_max",
        "recovered_at",
        "rejections",
        "retries",
        "timeouts",
    )

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.epoch = perf_counter()
        self.calls = 0  # calls of decorated functions
        # Successes and attempts are derived (calls - failures; calls - cache hits +
        # retries): two increments fewer on the success path.
        self.retries = 0  # attempts beyond the first of a call
        self.failures = 0  # calls that raised to the caller
        self.attempt_failures = 0  # attempts that raised or timed out
        self.timeouts = 0  # attempts cut by the timeout gene
        self.breaker_trips = 0  # closed/half-open -> open transitions
        self.rejections = 0  # attempts refused locally (open breaker, rate limit, bulkhead)
        self.bulkhead_rejections = 0  # of which by a full bulkhead
        self.half_open_probes = 0  # trial attempts let through by a half-open breaker
        self.fallbacks = 0
        self.cache_hits = 0
        self.latency_total = 0.0  # seconds over all calls, retries and backoff included
        self.latency_max = 0.0
        self.ok_latency_max = 0.0  # slowest successful attempt
        self.last_failure: float | None = None  # perf_counter of the last failed attempt
        self.recovered_at: float | None = None  # first success after that failure

    def snapshot(self) -> dict[str, Any]:
        """The counters as plain data; times are seconds since the last reset."""
        e = self.epoch
        return {
            "calls": self.calls,
            "attempts": self.calls - self.cache_hits + self.retries,
            "successes": self.calls - self.failures,
            "retries": self.retries,
            "failures": self.failures,
            "attempt_failures": self.attempt_failures,
            "timeouts": self.timeouts,
            "breaker_trips": self.breaker_trips,
            "rejections": self.rejections,
            "bulkhead_rejections": self.bulkhead_rejections,
            "half_open_probes": self.half_open_probes,
            "fallbacks": self.fallbacks,
            "cache_hits": self.cache_hits,
            "latency_total_s": self.latency_total,
            "latency_max_s": self.latency_max,
            "ok_latency_max_s": self.ok_latency_max or None,
            "last_failure_at_s": None if self.last_failure is None else self.last_failure - e,
            "recovered_at_s": None if self.recovered_at is None else self.recovered_at - e,
        }
