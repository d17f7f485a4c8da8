"""The resilience delta: a threat the gate fails on, or a pass that exercised none of its
resilience paths, is not 'mitigated', and a test that evolves several modules together
counts once in every score."""

from __future__ import annotations

import dataclasses

from pytest_rafael.plugin.gate import compute_delta
from pytest_rafael.report.group import merge_group
from pytest_rafael.results import IterationResult, TestResult


def passed(fitness: float, genome: dict[str, object] | None = None) -> IterationResult:
    return IterationResult(
        nodeid="t.py::test",
        scenario="cut",
        index=0,
        outcome="passed",
        duration_s=0.1,
        module="m",
        genome=genome or {},
        fitness=fitness,
    )


def result(
    fitness: float,
    *,
    min_fitness: float | None = None,
    scenario: str = "cut",
    module: str = "m",
    together: tuple[str, ...] = (),
    best: float | None = None,
) -> TestResult:
    it = passed(fitness)
    return TestResult(
        nodeid="t.py::test",
        scenario=scenario,
        severity="medium",
        module=module,
        iterations=(it,),
        baseline_fitness=fitness,
        baseline_genome={},
        min_fitness=min_fitness,
        baseline_n=1,
        best_fitness=best,
        together=together,
    )


def test_a_threat_below_its_gate_is_not_mitigated() -> None:
    assert compute_delta([result(0.33, min_fitness=0.8)]).threats_mitigated == ()
    assert compute_delta([result(0.9, min_fitness=0.8)]).threats_mitigated == ("cut",)
    assert compute_delta([result(0.33)]).threats_mitigated == ("cut",)  # no gate: withstood


def test_a_test_evolving_two_modules_counts_once() -> None:
    both = ("api", "repo")
    views = [
        result(0.4, module="api", together=both, best=0.9),
        result(0.4, module="repo", together=both, best=0.6),
    ]
    other = result(1.0, scenario="slow")
    delta = compute_delta([*views, other])
    assert delta.baseline_score == 0.7  # (0.4 + 1.0) / 2, not (0.4 + 0.4 + 1.0) / 3
    assert delta.potential_score == 0.95  # the pair's best module: (0.9 + 1.0) / 2


RETRY = {"genes": {"retry": {"max_attempts": 3}}}


def unexercised(runtime: dict[str, object]) -> TestResult:
    """A pass of a test whose shipped genome carries a retry gene."""
    it = dataclasses.replace(passed(0.9, RETRY), runtime=runtime)
    return TestResult(
        nodeid="t.py::test",
        scenario="cut",
        severity="medium",
        module="m",
        iterations=(it,),
        baseline_fitness=0.9,
        baseline_genome=RETRY,
        baseline_n=1,
    )


def test_a_pass_that_never_ran_its_retry_is_not_mitigated() -> None:
    idle = unexercised({"calls": 1, "retries": 0})
    assert (idle.withstood, idle.not_exercised) == (False, True)
    assert idle.to_dict()["coverage"]["paths_never_ran"] == ["retry"]
    delta = compute_delta([idle])
    assert delta.threats_mitigated == ()
    assert delta.not_exercised == ("t.py::test [cut]",)
    assert delta.vulnerabilities == ()  # passed: not failed either
    merged = merge_group("g", [_doc(idle, delta)])["delta"]
    assert merged["threats_mitigated"] == []
    assert merged["not_exercised"] == ["t.py::test [cut]"]
    retried = unexercised({"calls": 1, "retries": 1})
    assert (retried.withstood, retried.not_exercised) == (True, False)
    assert compute_delta([retried]).threats_mitigated == ("cut",)


def _doc(test: TestResult, delta: object) -> dict[str, object]:
    return {
        "run_id": "r1",
        "started_at": "2026-01-01T00:00:00Z",
        "finished_at": "2026-01-01T00:01:00Z",
        "tests": [test.to_dict()],
        "delta": dataclasses.asdict(delta),  # type: ignore[call-overload]
        "gate": {"passed": True, "failures": []},
    }


def test_a_test_failing_without_faults_is_no_vulnerability() -> None:
    failed = dataclasses.replace(passed(0.0), outcome="failed", error="AssertionError: x")
    broken = dataclasses.replace(
        result(0.0),
        iterations=(failed,),
        reference={"outcome": "failed", "error": "AssertionError: x"},
    )
    delta = compute_delta([broken])
    assert delta.vulnerabilities == ()
    assert delta.fails_without_faults == ("t.py::test [cut]: without faults: AssertionError: x",)
    assert delta.threats_mitigated == ()  # nor is the threat mitigated
    merged = merge_group("g", [_doc(broken, delta)])["delta"]  # shards merge it alike
    assert merged["vulnerabilities"] == []
    assert merged["fails_without_faults"] == list(delta.fails_without_faults)
    vulnerable = dataclasses.replace(broken, reference={"outcome": "passed"})
    assert compute_delta([vulnerable]).vulnerabilities == (
        "t.py::test [cut]: 1 of 1 failed, first: AssertionError: x",
    )
    assert compute_delta([vulnerable]).fails_without_faults == ()
