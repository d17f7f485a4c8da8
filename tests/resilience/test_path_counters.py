"""The counters behind resilience path coverage: a half-open probe and a bulkhead
rejection are counted where they happen, and coverage_of turns counters and
sometimes/always metrics into the paths a (test, scenario) pair never exercised."""

from __future__ import annotations

import threading
import time

import pytest

from pytest_rafael.genome.genome import Genome
from pytest_rafael.report.paths import coverage_of, record_always, record_sometimes
from pytest_rafael.resilience import BulkheadFull, CircuitOpenError, antifragile, runtime


def test_a_half_open_probe_is_counted_once_the_reset_timeout_passed() -> None:
    genome = Genome.from_dict(
        "probes",
        {"genes": {"circuit_breaker": {"failure_threshold": 2, "reset_timeout": 0.05}}},
    )
    healthy = threading.Event()

    @antifragile("probes")
    def call() -> str:
        if not healthy.is_set():
            raise ConnectionError("down")
        return "ok"

    with runtime.use_genome(genome, "probes"):
        runtime.reset_counters("probes")
        for _ in range(2):
            with pytest.raises(ConnectionError):
                call()
        with pytest.raises(CircuitOpenError):
            call()
        assert runtime.counters("probes")["half_open_probes"] == 0
        time.sleep(0.1)  # past reset_timeout: the next call is a trial
        healthy.set()
        assert call() == "ok"
        counts = runtime.counters("probes")
    assert counts["breaker_trips"] == 1
    assert counts["half_open_probes"] == 1


def test_a_full_bulkhead_counts_a_bulkhead_rejection() -> None:
    genome = Genome.from_dict(
        "bulk", {"genes": {"bulkhead": {"max_concurrent": 1, "max_queue": 0}}}
    )
    inside, release = threading.Event(), threading.Event()

    @antifragile("bulk")
    def slow() -> None:
        inside.set()
        release.wait(5)

    with runtime.use_genome(genome, "bulk"):
        runtime.reset_counters("bulk")
        holder = threading.Thread(target=slow)
        holder.start()
        assert inside.wait(5)
        with pytest.raises(BulkheadFull):
            slow()
        release.set()
        holder.join(5)
        counts = runtime.counters("bulk")
    assert counts["bulkhead_rejections"] == 1
    assert counts["rejections"] == 1


def iteration(genes: list[str], runtime_counts: dict[str, int] | None, **metrics: object) -> dict:
    return {
        "outcome": "passed",
        "genome": {"genes": {g: {} for g in genes}},
        "runtime": runtime_counts if runtime_counts is not None else {},
        "metrics": metrics,
    }


def test_coverage_names_paths_never_run_and_conditions_over_iterations() -> None:
    metrics: dict[str, object] = {}
    record_sometimes(metrics, "stale price served", False)
    record_always(metrics, "price positive", True)
    later: dict[str, object] = {}
    record_sometimes(later, "stale price served", False)
    record_sometimes(later, "answered", True)
    record_always(later, "price positive", False)
    record_always(later, "price positive", True)  # once broken, stays broken
    coverage = coverage_of(
        [
            iteration(["retry", "circuit_breaker"], {"calls": 3, "retries": 2}, **metrics),
            iteration(["retry", "circuit_breaker"], {"calls": 1, "breaker_trips": 1}, **later),
            iteration(["fallback"], None),  # no counters: says nothing about fallback
        ]
    )
    assert coverage.ran == ("retry", "breaker_open")
    assert coverage.never_ran == ("half_open",)
    assert coverage.sometimes_missed == ("stale price served",)
    assert coverage.sometimes_hit == ("answered",)
    assert coverage.always_broken == ("price positive",)
    assert coverage.gaps == (
        "never ran: half_open",
        "never held: 'stale price served'",
        "broke: 'price positive'",
    )
    assert not coverage.exercised  # an always broke, although paths ran


def test_a_label_must_be_text() -> None:
    with pytest.raises(ValueError, match="label"):
        record_sometimes({}, "  ", True)
