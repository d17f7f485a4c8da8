"""Every lesson template, rendered from data that triggers it: each is a whole sentence
whose figures come from the data, and none names a cause the data does not show."""

from __future__ import annotations

from typing import Any

import pytest

from pytest_rafael.report.guidance import GUIDANCE
from pytest_rafael.report.lessons import build_lessons


def _it(index: int, outcome: str, **kw: Any) -> dict[str, Any]:
    return {
        "index": index,
        "outcome": outcome,
        "duration_s": kw.pop("duration_s", 0.5),
        "fitness": kw.pop("fitness", 0.9 if outcome == "passed" else 0.0),
        "genome": kw.pop("genome", None),
        "faults": [{"kind": "toxic"}],
        "error": kw.pop("error", None if outcome == "passed" else "OSError: boom"),
        **kw,
    }


def _test(**kw: Any) -> dict[str, Any]:
    base = {
        "nodeid": "t.py::test_x",
        "scenario": "sc",
        "module": None,
        "severity": "high",
        "iterations": [_it(0, "passed")],
        "baseline_fitness": 0.9,
        "baseline_n": 1,
        "samples_needed": 1,
        "min_fitness": None,
        "best_fitness": None,
        "best_genome": None,
        "baseline_genome": None,
        "proposal_id": None,
        "withstood": True,
        "reference": {"outcome": "passed", "duration_s": 0.1},
    }
    return base | kw


RETRY = {"genes": {"retry": {"max_attempts": 3}}}
CASES: dict[str, dict[str, Any]] = {
    "failure": _test(
        iterations=[_it(0, "failed"), _it(1, "failed", duration_s=0.6)], withstood=False
    ),
    "unscored": _test(
        iterations=[
            _it(
                0,
                "error",
                fitness=None,
                error=(
                    "scenario 'sc': the test call ended after 0.410 s, before its first fault at "
                    "0.6 s; nothing was injected"
                ),
            )
        ],
        baseline_n=0,
        withstood=False,
    ),
    "gene": _test(
        module="m",
        iterations=[
            _it(0, "failed", genome={"genes": {"retry": {"max_attempts": 1}}}),
            _it(1, "passed", genome={"genes": {"retry": {"max_attempts": 4}}}),
        ],
    ),
    # The review's case: the passing genome also added a retry, so the timeout is not
    # known to be what mattered.
    "gene_confounded": _test(
        module="m",
        iterations=[
            _it(0, "failed", genome={"genes": {"timeout": {"seconds": 30}}}),
            _it(
                1,
                "passed",
                genome={"genes": {"timeout": {"seconds": 15}, "retry": {"max_attempts": 4}}},
            ),
        ],
    ),
    "below_gate": _test(
        min_fitness=0.8, baseline_fitness=0.0, withstood=False, iterations=[_it(0, "failed")]
    ),
    "below_gate_proposed": _test(
        min_fitness=0.8,
        baseline_fitness=0.0,
        withstood=False,
        iterations=[_it(0, "failed")],
        proposal_id="P-3",
        best_fitness=0.85,
        best_n=2,
    ),
    "evolution": _test(
        module="m",
        baseline_fitness=0.1,
        best_fitness=0.9,
        best_n=2,
        baseline_genome={"genes": {}},
        best_genome=RETRY,
        proposal_id="P-1",
    ),
    "reference": _test(
        reference={"outcome": "failed", "duration_s": 0.1, "error": "AssertionError: no"}
    ),
    "harmful_retry": _test(
        module="m",
        withstood=False,
        iterations=[_it(0, "failed", runtime={"retries": 3, "failures": 0, "calls": 3})],
    ),
    "threshold": _test(
        min_fitness=0.95,
        baseline_fitness=0.6,
        iterations=[
            _it(
                0,
                "passed",
                duration_s=2.0,
                fitness=0.6,
                fitness_terms={"success_rate": 1.0, "speed": 0.05, "recovery_speed": 0.9},
            )
        ],
    ),
    "slow_success": _test(
        iterations=[_it(0, "passed", duration_s=2.0, fitness_terms={"speed": 0.05})]
    ),
    "samples": _test(baseline_n=1, samples_needed=3, withstood=False),
    "unmeasured_proposal": _test(module="m", proposal_id="P-2", best_fitness=None),
    "non_idempotent": _test(module="jobs", idempotent=False),
    "withstood": _test(),
    "retry_never_ran": _test(
        module="sessions",
        withstood=False,
        iterations=[_it(0, "failed", genome=RETRY, runtime={"calls": 2, "failures": 1})],
    ),
}
EXPECTED = {
    "failure": "Under sc, 2 of 2 iterations of t.py::test_x failed with OSError",
    "unscored": "1 of 1 iterations of t.py::test_x under sc measured nothing about "
    "resilience and were not scored: scenario 'sc': the test call ended after "
    "0.410 s, before its first fault at 0.6 s; nothing was injected.",
    "gene": "passed with retry.max_attempts at least 4 (1 iteration) and failed with 1 or "
    "less (1 iteration).",
    "gene_confounded": "passed with timeout.seconds at most 15 s (1 iteration) and failed "
    "with 30 s or more (1 iteration). The passing genomes also differed in retry: this run "
    "cannot tell which of them made the difference.",
    "below_gate": "stays below the gate: fitness 0.000 (n=1) < 0.800.",
    # A mean over two measurements is no promise about the runs after an adoption.
    "below_gate_proposed": "Candidate P-3 has scored 0.850 there over 2 measurement(s) so "
    "far, above the gate; adopted, it is judged on its own measurements from then on.",
    "evolution": "a candidate for t.py::test_x scored 0.900 (n=2) against the shipped "
    "genome's 0.100 (n=1), adding retry; proposed for adoption as P-1.",
    "reference": "did not pass without faults either",
    "harmful_retry": "failed although every decorated call returned, after 3 retries",
    "threshold": "speed cost the most, as it took 2.00 s against 0.10 s",
    "slow_success": "passed but took 2.00 s against 0.10 s without faults (20x slower)",
    "samples": "Only 1 measurement(s) of the shipped genome of t.py::test_x under sc",
    "unmeasured_proposal": "Proposal P-2 for module 'm' was never measured on t.py::test_x",
    "non_idempotent": "Module 'jobs' is declared non-idempotent",
    "withstood": "t.py::test_x withstood sc: the shipped genome passed all 1 of its measurements.",
    "retry_never_ran": "(shipped genome): never ran: retry. The retry never ran although "
    "calls failed: 'sessions' is not declared idempotent",
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_lesson_renders_from_its_data(case: str) -> None:
    gate = (
        {"failures": ["t.py::test_x [sc]: fitness 0.000 (n=1) < 0.8"]}
        if case.startswith("below_gate")
        else {}
    )
    texts = [
        lesson.text
        for lesson in build_lessons({"chaos": True, "gate": gate, "tests": [CASES[case]]})
    ]
    assert any(EXPECTED[case] in t for t in texts), texts
    for text in texts:
        assert text.endswith("."), text
        assert "None" not in text, text
        assert "n=?" not in text, text
        assert "changing adding" not in text
        assert "by changing adding" not in text


def test_every_guidance_template_has_a_case() -> None:
    covered = {
        "reference_lesson",
        "harmful_retry_lesson",
        "threshold_lesson",
        "slow_success_lesson",
        "samples_lesson",
        "unmeasured_proposal_lesson",
        "non_idempotent_lesson",
    }
    assert {f.__name__ for f in GUIDANCE} == covered


def test_no_lesson_where_the_data_shows_no_cause() -> None:
    texts = [lesson.text for lesson in build_lessons({"chaos": True, "tests": [_test()]})]
    assert texts == [EXPECTED["withstood"]]


def test_a_hypothesis_lesson_counts_its_faults_and_says_where_the_yaml_is() -> None:
    from pytest_rafael.report.summary import render_summary

    results = {
        "chaos": True,
        "tests": [],
        "hypothesis": {
            "failures": [{"nodeid": "t.py::test_ledger", "schedule": [{"kind": "toxic"}]}]
        },
    }
    texts = [lesson.text for lesson in build_lessons(results)]
    line = next(t for t in texts if "Hypothesis found" in t)
    assert "(1 fault)" in line
    # summary.md has no Hypothesis section: the lesson names where the YAML really is.
    assert "index.html's Hypothesis section and in results.json" in line
    assert "in the Hypothesis section." not in render_summary(results)


def test_a_retry_is_not_blamed_where_a_fallback_answered_or_retries_cannot_duplicate() -> None:
    from pytest_rafael.report.guidance import harmful_retry_lesson

    served = {"retries": 3, "failures": 0, "fallbacks": 1, "calls": 1}
    fell_back = _test(module="m", iterations=[_it(0, "failed", runtime=served)])
    assert harmful_retry_lesson(fell_back) is None  # the fallback's value may be the cause
    retried = {"retries": 3, "failures": 0, "calls": 3}
    declared = _test(module="m", idempotent=False, iterations=[_it(0, "failed", runtime=retried)])
    assert harmful_retry_lesson(declared) is None  # its retries re-send only unsent requests
    plain = _test(module="m", iterations=[_it(0, "failed", runtime=retried)])
    lesson = harmful_retry_lesson(plain)
    assert lesson is not None
    assert "1 of the 1 failed iteration(s)" in lesson[1]
