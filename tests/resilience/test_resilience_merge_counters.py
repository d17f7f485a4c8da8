"""Counters of several modules as one test's (``module=("a", "b")``)."""

from __future__ import annotations

from typing import Any

from pytest_rafael.resilience.runtime import merge_counters


def snap(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "calls": 0,
        "attempts": 0,
        "successes": 0,
        "retries": 0,
        "failures": 0,
        "attempt_failures": 0,
        "timeouts": 0,
        "breaker_trips": 0,
        "rejections": 0,
        "fallbacks": 0,
        "cache_hits": 0,
        "latency_total_s": 0.0,
        "latency_max_s": 0.0,
        "ok_latency_max_s": None,
        "last_failure_at_s": None,
        "recovered_at_s": None,
    }
    return {**base, **overrides}


def test_counts_add_up_and_maxima_take_the_latest() -> None:
    merged = merge_counters(
        [
            snap(
                calls=3,
                successes=2,
                failures=1,
                latency_total_s=0.5,
                latency_max_s=0.3,
                last_failure_at_s=0.2,
                recovered_at_s=0.4,
            ),
            snap(
                calls=2,
                successes=2,
                retries=1,
                latency_total_s=0.25,
                latency_max_s=0.1,
                ok_latency_max_s=0.1,
            ),
        ]
    )
    assert (merged["calls"], merged["successes"], merged["failures"]) == (5, 4, 1)
    assert merged["retries"] == 1
    assert merged["latency_total_s"] == 0.75
    assert merged["latency_max_s"] == 0.3
    assert merged["ok_latency_max_s"] == 0.1
    assert merged["last_failure_at_s"] == 0.2
    assert merged["recovered_at_s"] == 0.4


def test_the_test_recovered_only_when_every_failing_module_did() -> None:
    recovered = snap(last_failure_at_s=0.1, recovered_at_s=0.2)
    never = snap(last_failure_at_s=0.3)
    assert merge_counters([recovered, never])["recovered_at_s"] is None
    later = snap(last_failure_at_s=0.3, recovered_at_s=0.9)
    assert merge_counters([recovered, later])["recovered_at_s"] == 0.9
    assert merge_counters([snap(), snap()])["recovered_at_s"] is None


def test_one_module_is_passed_through() -> None:
    only = snap(calls=1, successes=1)
    assert merge_counters([only]) is only
