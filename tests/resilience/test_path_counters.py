"""The counters behind resilience path coverage: a half-open probe and a bulkhead
rejection are counted where they happen, and coverage_of turns counters and
sometimes/always metrics into the paths a (test, scenario) pair never exercised."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from typing import Any

import pytest

from pytest_rafael.common.path_coverage import coverage_of, record_always, record_sometimes
from pytest_rafael.genome.genome import Genome
from pytest_rafael.resilience import (
    BulkheadFull,
    CircuitOpenError,
    antifragile,
    current_timeout,
    runtime,
)


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


@pytest.mark.parametrize("retry", [False, True])
def test_a_socket_given_the_budget_that_times_out_is_the_timeout_firing(retry: bool) -> None:
    """The documented sync pattern hands current_timeout() to the socket, which raises at
    the deadline: that is the timeout gene firing as much as a late return is. An error
    well within the budget is not."""
    genes: dict[str, Any] = {"timeout": {"seconds": 0.1}}
    if retry:  # the full pipeline (retries), not the fast path
        genes["retry"] = {"max_attempts": 2, "base_delay": 0}
    genome = Genome.from_dict("budget", {"genes": genes})
    silent = socket.create_server(("127.0.0.1", 0))  # accepts, never answers

    @antifragile("budget")
    def ask() -> bytes:
        with socket.create_connection(silent.getsockname(), timeout=current_timeout()) as s:
            return s.recv(1)

    @antifragile("budget")
    def refused() -> None:
        raise ConnectionRefusedError("at once")

    with silent, runtime.use_genome(genome, "budget"):
        runtime.reset_counters("budget")
        with pytest.raises(TimeoutError):
            ask()
        counts = runtime.counters("budget")
        assert counts["timeouts"] == 1 + counts["retries"], counts
        runtime.reset_counters("budget")
        with pytest.raises(ConnectionRefusedError):
            refused()
        assert runtime.counters("budget")["timeouts"] == 0


def test_an_async_wait_given_the_budget_that_times_out_is_the_timeout_firing() -> None:
    genome = Genome.from_dict("abudget", {"genes": {"timeout": {"seconds": 0.1}}})

    @antifragile("abudget")
    async def ask() -> None:
        await asyncio.wait_for(asyncio.Event().wait(), timeout=current_timeout())

    with runtime.use_genome(genome, "abudget"):
        runtime.reset_counters("abudget")
        with pytest.raises((TimeoutError, asyncio.TimeoutError)):
            asyncio.run(ask())
        assert runtime.counters("abudget")["timeouts"] == 1


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
    assert coverage.shortfall == "chaos.always 'price positive' broke"  # the reason named
    idle = coverage_of([iteration(["retry"], {"calls": 2})])
    assert idle.shortfall == "no resilience path ran"
    assert coverage_of([iteration(["retry"], {"calls": 2, "retries": 1})]).shortfall is None


def test_a_label_must_be_text() -> None:
    with pytest.raises(ValueError, match="label"):
        record_sometimes({}, "  ", True)
