"""Directed moves: the measurement says which gene a failure points at, and the engine
changes that gene (and only that one) with the size the evidence asks for."""

from __future__ import annotations

import json
import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_rafael.genome import directed
from pytest_rafael.genome.evolution import Engine
from pytest_rafael.genome.fitness import Measurement
from pytest_rafael.genome.genes import make_gene
from pytest_rafael.genome.genome import Genome

POOR = Genome.from_dict("svc", {"generation": 0, "genes": {"timeout": {"seconds": 30.0}}})


def failed_call(
    *,
    attempts: int = 1,
    retries: int = 0,
    span: float = 0.05,
    window: tuple[float, float] | None = None,
    duration: float | None = None,
    timeouts: int = 0,
    calls: int = 1,
    failures: int = 1,
    ok_latency: float | None = None,
) -> Measurement:
    """A test that stopped at its first failed call, as the lead's examples do: the
    harness reverts the faults when the call ends, so by default the window is censored."""
    duration = span + 0.001 if duration is None else duration
    window = (0.0, duration + 0.002) if window is None else window
    runtime: dict[str, Any] = {
        "calls": calls,
        "attempts": attempts,
        "retries": retries,
        "failures": failures,
        "attempt_failures": attempts,
        "timeouts": timeouts,
        "latency_total_s": span,
        "latency_max_s": span,
        "last_failure_at_s": span,
        "recovered_at_s": None,
        "ok_latency_max_s": ok_latency,
    }
    return Measurement.from_iteration("failed", duration, runtime, {}, window)


def passed(
    calls: int = 24, attempts: int = 30, window: tuple[float, float] = (0.0, 1.2)
) -> Measurement:
    runtime = {
        "calls": calls,
        "attempts": attempts,
        "retries": attempts - calls,
        "failures": 0,
        "latency_total_s": 2.0,
        "latency_max_s": 1.3,
        "last_failure_at_s": 1.2,
        "recovered_at_s": 1.3,
        "ok_latency_max_s": 0.004,
    }
    return Measurement.from_iteration("passed", 2.6, runtime, {"budget_s": 6.0}, window)


def evidence(genome: Genome, *ms: Measurement) -> directed.Evidence:
    ev = directed.Evidence()
    for m in ms:
        ev = directed.observe(ev, genome, m)
    return ev


def test_measurement_carries_the_runtime_evidence() -> None:
    m = failed_call(attempts=4, retries=3, span=0.3, timeouts=1)
    assert (m.retries, m.attempt_failures, m.timeouts) == (3, 4, 1)
    assert m.latency_max_s == 0.3
    assert m.last_failure_at_s == 0.3
    assert m.recovered_at_s is None


def test_connection_errors_without_retry_add_a_retry_and_leave_the_timeout_alone() -> None:
    ev = evidence(POOR, failed_call())
    assert ev.lossy == 1
    assert ev.exhausted == 1
    assert ev.censored == 1
    child = directed.directed_move(POOR, ev, [], random.Random(1))
    assert child is not None
    assert "retry" in child.genes
    assert child.genes["timeout"] == POOR.genes["timeout"]  # played no role: untouched


def test_exhausted_retries_grow_the_backoff_past_the_outage_that_outlasted_the_call() -> None:
    g = POOR.with_genes({**POOR.genes, "retry": make_gene("retry", {})})  # 3 attempts
    m = failed_call(attempts=3, retries=2, span=0.35)
    ev = evidence(g, m)
    assert ev.exhausted == 1
    for seed in range(20):
        child = directed.directed_move(g, ev, [], random.Random(seed))
        assert child is not None
        retry = child.genes["retry"].params
        assert retry["max_attempts"] > 3
        # Unknown length: a geometric step, at least 3x the longest failed call.
        assert directed.backoff_budget(retry) >= 3.0 * 0.35
        assert child.genes["timeout"] == g.genes["timeout"]


def test_a_known_outage_is_covered_in_one_step() -> None:
    """The fault window ended inside the call (calls failed while it lasted): the new
    retry's total backoff covers 1.5x that window, whatever the old one was."""
    g = POOR.with_genes({**POOR.genes, "retry": make_gene("retry", {})})
    m = failed_call(attempts=3, retries=2, span=0.2, window=(0.1, 2.1), duration=3.0)
    ev = evidence(g, m)
    assert ev.outage_s == 2.0
    assert ev.censored == 0
    child = directed.directed_move(g, ev, [], random.Random(0))
    assert child is not None
    params = child.genes["retry"].params
    assert directed.backoff_budget(params) >= 3.0
    # max_delay about a quarter of the budget: the first attempt after the outage is soon
    assert params["max_delay"] <= 0.26 * directed.backoff_budget(params) + 0.5


def test_failures_that_did_not_use_their_retries_do_not_grow_them() -> None:
    """A non-retryable error (or an open breaker) ended the call early: more attempts
    would not help, so no retry move."""
    g = POOR.with_genes({**POOR.genes, "retry": make_gene("retry", {"max_attempts": 5})})
    ev = evidence(g, failed_call(attempts=1, retries=0, span=0.01))
    assert ev.lossy == 1
    assert ev.exhausted == 0
    assert directed.directed_move(g, ev, [], random.Random(0)) is None


def test_a_timeout_that_cuts_normal_attempts_grows_above_them() -> None:
    g = Genome.from_dict(
        "svc", {"genes": {"timeout": {"seconds": 0.02}, "retry": {"max_attempts": 3}}}
    )
    m = failed_call(
        attempts=2, retries=1, span=0.1, timeouts=2, ok_latency=0.05, failures=0, calls=5
    )
    ev = evidence(g, m)
    assert ev.timeouts == 2
    assert ev.lossy == 0
    child = directed.directed_move(g, ev, [0.05], random.Random(3))
    assert child is not None
    assert 0.1 <= child.genes["timeout"]["seconds"] <= 0.15
    assert child.genes["retry"] == g.genes["retry"]


def test_hung_attempts_cut_late_get_a_timeout_from_the_observed_latency() -> None:
    g = Genome.from_dict(
        "svc", {"genes": {"timeout": {"seconds": 10.0}, "retry": {"max_attempts": 3}}}
    )
    # Calls failed after the whole 10 s, without using their retries: the attempts hung.
    m = failed_call(attempts=2, retries=1, span=10.0, ok_latency=0.05, failures=2, calls=20)
    ev = evidence(g, m)
    assert ev.exhausted == 0
    child = directed.directed_move(g, ev, [0.05], random.Random(0))
    assert child is not None
    assert 0.075 <= child.genes["timeout"]["seconds"] <= 0.15


def test_no_failure_no_move() -> None:
    ev = evidence(POOR, passed())
    assert ev.lossy == 0
    assert directed.directed_move(POOR, ev, [0.004], random.Random(0)) is None


@settings(max_examples=200, deadline=None)
@given(
    budget=st.floats(0.0, 500.0),
    k=st.integers(1, 20),
    base=st.floats(0.0, 10.0),
    mult=st.floats(1.0, 10.0),
    jitter=st.floats(0.0, 0.99),
)
def test_size_retry_stays_valid_and_reaches_the_budget_when_the_bounds_allow(
    budget: float, k: int, base: float, mult: float, jitter: float
) -> None:
    params = dict(
        make_gene(
            "retry", {"max_attempts": k, "base_delay": base, "multiplier": mult, "jitter": jitter}
        ).params
    )
    out = directed.size_retry(params, budget, k)
    gene = make_gene("retry", out)  # valid by construction
    assert gene["max_attempts"] >= k
    if budget <= 0.5 * 19 * 60 * (1 - jitter):
        assert directed.backoff_budget(out) >= budget * 0.999


def test_evidence_round_trips_through_json() -> None:
    ev = evidence(POOR, failed_call(), passed())
    assert directed.Evidence.from_dict(json.loads(json.dumps(ev.to_dict()))) == ev


# -- the engine ---------------------------------------------------------------------


class Outage:
    """A synthetic dependency that is down from t=0 for ``outage_s``; the test stops at
    the first failed call (like the examples). Only the retry budget decides."""

    def __init__(self, outage_s: float) -> None:
        self.outage_s = outage_s

    def measure(self, g: Genome) -> Measurement:
        retry = g.genes.get("retry")
        k = retry["max_attempts"] if retry else 1
        budget = directed.backoff_budget(retry.params) if retry else 0.0
        attempt_s = 0.02
        held = budget + k * attempt_s
        if held < self.outage_s:
            return failed_call(attempts=k, retries=k - 1, span=held)
        return passed(attempts=24 + k)


def test_engine_solves_an_outage_within_one_ci_run_and_proposes() -> None:
    dep = Outage(1.2)
    engine = Engine("t::db", POOR, seed=1)
    genomes = []
    for i in range(5):
        g = engine.next_candidate(i)
        engine.observe(i, g, dep.measure(g))
        genomes.append(g)
    # No iteration was spent on the timeout gene: every candidate keeps it.
    assert all(g.genes["timeout"] == POOR.genes["timeout"] for g in genomes)
    v = engine.verdict()
    assert v.propose, v.reason
    assert v.best_genome is not None
    assert dep.measure(v.best_genome).outcome == "passed"


def test_directed_chain_survives_persistence_and_is_deterministic() -> None:
    def run(seed: int) -> list[str]:
        dep, state, ids = Outage(3.0), None, []
        for _r in range(2):
            engine = Engine("t::db", POOR, seed=seed, state=state)
            for i in range(5):
                g = engine.next_candidate(i)
                engine.observe(i, g, dep.measure(g))
                ids.append(g.id)
            state = json.loads(json.dumps(engine.state()))
        return ids

    assert run(7) == run(7)


def test_restored_engine_continues_the_directed_chain_exactly() -> None:
    dep = Outage(5.0)
    live = Engine("t::db", POOR, seed=3)
    for i in range(3):
        g = live.next_candidate(i)
        live.observe(i, g, dep.measure(g))
    state = json.loads(json.dumps(live.state()))
    assert any(e["evidence"]["exhausted"] for e in state["entries"].values())
    restored = Engine("t::db", POOR, seed=3, state=state)
    assert restored.next_candidate(3) == live.next_candidate(3)
