"""The controller's pure parts, without a pytest run: iterations become test results
(build_tests), the gate (evaluate_gate) and the resilience delta (compute_delta)."""

from __future__ import annotations

from typing import Any

import pytest

from pytest_rafael.genome.genome import Genome
from pytest_rafael.plugin.gate import build_tests, compute_delta, evaluate_gate
from pytest_rafael.results import IterationResult, PairVerdict, TestResult

SHIPPED: dict[str, Any] = {"generation": 1, "genes": {}}
CANDIDATE: dict[str, Any] = {"generation": 2, "genes": {"retry": {"max_attempts": 4}}}


def it(
    index: int,
    fitness: float | None,
    outcome: str = "passed",
    genome: dict[str, Any] | None = SHIPPED,
    nodeid: str = "t.py::test_a",
    scenario: str = "db_failure",
    min_fitness: float | None = None,
) -> IterationResult:
    return IterationResult(
        nodeid=nodeid,
        scenario=scenario,
        index=index,
        outcome=outcome,  # type: ignore[arg-type]
        duration_s=0.1,
        module="payments",
        severity="high",
        genome=genome,
        fitness=fitness,
        error=None if outcome == "passed" else "ConnectionError: down",
        min_fitness=min_fitness,
    )


def verdict(
    best: dict[str, Any] | None,
    entries: dict[str, dict[str, float]],
    baseline_fitness: float | None = None,
) -> PairVerdict:
    return PairVerdict(
        key="t.py::test_a::db_failure",
        nodeid="t.py::test_a",
        scenario="db_failure",
        module="payments",
        baseline_fitness=baseline_fitness,
        best_fitness=None,
        best_genome=best,
        baseline_genome=SHIPPED,
        propose=best is not None,
        reason="r",
        idempotent=True,
        engine_state={"entries": entries},
    )


def candidate_id() -> str:
    return Genome.from_dict("payments", CANDIDATE).id


def test_build_tests_scores_the_shipped_genome_by_its_own_iterations() -> None:
    its = [it(0, 0.4, "failed"), it(1, 0.9, genome=CANDIDATE), it(2, 0.6)]
    (t,) = build_tests(its, {})
    assert t.baseline_fitness == 0.5  # the candidate's 0.9 is not the shipped genome's
    assert t.baseline_n == 2
    assert t.best_fitness is None  # no verdict: no candidate to show
    assert [i.index for i in t.iterations] == [0, 1, 2]


def test_build_tests_keeps_a_candidate_only_when_it_beats_the_baseline() -> None:
    its = [it(0, 0.5), it(1, 0.95, genome=CANDIDATE)]
    better = verdict(CANDIDATE, {candidate_id(): {"n": 3, "sum": 2.7}})
    (t,) = build_tests(its, {better.key: better})
    assert t.best_fitness == 0.9  # the engine's mean for exactly that genome
    assert t.best_n == 3
    assert t.best_genome == CANDIDATE
    assert t.idempotent is True
    same = verdict(CANDIDATE, {candidate_id(): {"n": 3, "sum": 1.5 + 0.02}})
    (t,) = build_tests(its, {same.key: same})
    assert t.best_fitness is None  # 0.507 is within noise of 0.5: not an improvement
    assert t.best_n == 0


def test_build_tests_never_borrows_another_genomes_evidence() -> None:
    its = [it(0, 0.5)]
    other = {Genome.from_dict("payments", SHIPPED).id: {"n": 9, "sum": 9.0}}
    (t,) = build_tests(its, {"t.py::test_a::db_failure": verdict(CANDIDATE, other)})
    assert t.best_fitness is None


def test_build_tests_groups_pairs_and_takes_their_samples_needed() -> None:
    its = [it(0, 1.0), it(0, 1.0, scenario="cpu"), it(1, 1.0)]
    tests = build_tests(its, {}, samples_needed={"cpu": 3})
    assert [(t.scenario, len(t.iterations), t.samples_needed) for t in tests] == [
        ("db_failure", 2, 1),
        ("cpu", 1, 3),
    ]


def result(
    fitness: float | None, n: int = 1, min_fitness: float | None = 0.7, samples: int = 1, **kw: Any
) -> TestResult:
    return TestResult(
        nodeid="t.py::test_a",
        scenario="db_failure",
        severity="high",
        module="payments",
        iterations=tuple(it(i, fitness) for i in range(n)),
        baseline_fitness=fitness,
        min_fitness=min_fitness,
        baseline_n=n,
        samples_needed=samples,
        baseline_genome=SHIPPED,
        **kw,
    )


def test_gate_fails_below_the_threshold_and_names_the_test() -> None:
    gate = evaluate_gate([result(0.41)], 0.7)
    assert not gate.passed
    assert gate.failures == ("t.py::test_a [db_failure]: fitness 0.410 (n=1) < 0.7",)


def test_gate_passes_at_the_threshold_and_ignores_tests_without_one() -> None:
    assert evaluate_gate([result(0.7), result(0.0, min_fitness=None)], None).passed


def test_gate_counts_a_missing_score_as_zero() -> None:
    assert not evaluate_gate([result(None)], 0.7).passed


def test_gate_needs_enough_samples_of_a_chance_scenario() -> None:
    gate = evaluate_gate([result(0.9, n=1, samples=3)], 0.7)
    assert not gate.passed
    assert "only 1 measurement(s)" in gate.failures[0]
    assert evaluate_gate([result(0.9, n=3, samples=3)], 0.7).passed


def test_gate_mentions_the_proposed_candidate() -> None:
    gate = evaluate_gate([result(0.5, best_fitness=0.9, proposal_id="abc")], 0.7)
    assert gate.failures[0].endswith("(candidate 0.900 proposed as abc)")


def test_delta_of_nothing_is_zero() -> None:
    delta = compute_delta([])
    assert (delta.baseline_score, delta.current_score, delta.improvement_pct) == (0, 0, 0)


def test_delta_current_moves_only_with_an_adopted_candidate() -> None:
    proposed = result(0.5, best_fitness=0.9, proposal_id="p")
    delta = compute_delta([proposed])
    assert delta.baseline_score == delta.current_score == 0.5
    assert delta.potential_score == 0.9
    assert delta.potential_improvement_pct == pytest.approx(80.0)
    adopted = result(0.5, best_fitness=0.9, proposal_id="p", adopted=True)
    delta = compute_delta([adopted])
    assert delta.current_score == 0.9
    assert delta.improvement_pct == pytest.approx(80.0)


def _shard(test: TestResult, gate_passed: bool) -> dict[str, Any]:
    """One stored run holding ``test``, as `rafael report --run-group` reads it."""
    return {
        "run_id": "r1",
        "started_at": "2026-12-07T10:00:00Z",
        "finished_at": "2026-12-07T10:01:00Z",
        "tests": [test.to_dict()],
        "delta": {"vulnerabilities": []},
        "gate": {"passed": gate_passed, "failures": []},
    }


@pytest.mark.parametrize("baseline", [0.0, 0.5])
def test_a_merged_run_group_states_the_same_change_as_one_run(baseline: float) -> None:
    """`rafael report --run-group` recomputes the delta from the shards' tests: it must
    say what one run with those tests says, a gain from 0 included."""
    from pytest_rafael.report.group import merge_group

    adopted = result(baseline, best_fitness=0.9, proposal_id="p", adopted=True)
    one_run = compute_delta([adopted])
    shard = _shard(adopted, gate_passed=True)
    merged = merge_group("ci-1", [shard])["delta"]
    assert merged["improvement_pct"] == one_run.improvement_pct
    assert merged["potential_improvement_pct"] == one_run.potential_improvement_pct
    assert one_run.improvement_pct == (100.0 if baseline == 0 else 80.0)


def test_an_unmeasured_pair_has_no_score_in_the_gate_or_the_delta() -> None:
    """An interrupted run leaves a pair whose shipped genome never ran: the gate fails
    on it without claiming it scored 0, and the delta's mean leaves it out."""
    measured = result(0.9, n=2)
    unmeasured = TestResult(
        nodeid="t.py::test_b",
        scenario="ddos",
        severity="high",
        module="payments",
        iterations=(),
        baseline_fitness=None,
        min_fitness=0.5,
        baseline_n=0,
        baseline_genome=SHIPPED,
    )
    gate = evaluate_gate([measured, unmeasured], 0.5)
    assert gate.failures == ("t.py::test_b [ddos]: the shipped genome was not measured (n=0)",)
    delta = compute_delta([measured, unmeasured])
    assert delta.baseline_score == delta.current_score == 0.9
    assert delta.threats_mitigated == ("db_failure",)


def test_a_merged_run_group_lists_a_threat_below_its_gate_as_unmitigated() -> None:
    from pytest_rafael.report.group import merge_group

    below = result(0.34, n=2, min_fitness=0.5)  # every iteration passed, score below gate
    assert below.withstood
    one_run = compute_delta([below])
    assert one_run.threats_mitigated == ()
    shard = _shard(below, gate_passed=False)
    assert merge_group("g1", [shard])["delta"]["threats_mitigated"] == []


def test_delta_mitigated_threats_and_vulnerabilities() -> None:
    withstood = result(1.0, n=2)
    failing = TestResult(
        nodeid="t.py::test_b",
        scenario="cpu",
        severity="high",
        module="payments",
        iterations=(it(0, 0.2, "failed", nodeid="t.py::test_b", scenario="cpu"),),
        baseline_fitness=0.2,
        baseline_n=1,
        baseline_genome=SHIPPED,
    )
    delta = compute_delta([withstood, failing])
    assert delta.threats_mitigated == ("db_failure",)
    assert delta.vulnerabilities == (
        "t.py::test_b [cpu]: 1 of 1 failed, first: ConnectionError: down",
    )
    too_few = result(1.0, n=1, samples=3)  # withstood once: not enough to call it mitigated
    assert compute_delta([too_few]).threats_mitigated == ()


def test_pair_verdict_round_trips_as_a_report_attribute() -> None:
    v = verdict(CANDIDATE, {candidate_id(): {"n": 2, "sum": 1.8}}, baseline_fitness=0.4)
    again = PairVerdict.from_dict(v.to_dict())
    assert again == v
    assert again.entry_stats(candidate_id()) == (2, 0.9)
    assert again.entry_stats(None) == (0, None)
    assert again.entry_stats("unknown") == (0, None)
