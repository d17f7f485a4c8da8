"""The resilience delta: a threat the gate fails on is not 'mitigated', and a test that
evolves several modules together counts once in every score."""

from __future__ import annotations

from pytest_rafael.plugin.gate import compute_delta
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
