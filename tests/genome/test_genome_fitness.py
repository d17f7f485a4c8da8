"""The fitness terms, exactly as docs/genome.md defines them."""

from __future__ import annotations

import pytest

from pytest_rafael.genome.fitness import PASS_FLOOR, BaselineRef, Measurement, evaluate


def m(
    outcome: str = "passed",
    duration: float = 1.0,
    runtime: dict | None = None,
    metrics: dict | None = None,
    window: tuple[float, float] | None = None,
) -> Measurement:
    return Measurement.from_iteration(outcome, duration, runtime or {}, metrics or {}, window)


def test_success_rate_sources() -> None:
    assert m("passed").success_rate == 1.0
    assert m("failed").success_rate == 0.0
    # What the test recorded never lifts a failure ...
    assert m("failed", metrics={"success_rate": 0.75}).success_rate == 0.0
    assert m("failed", metrics={"ok": 10, "total": 10}).success_rate == 0.0
    # ... but lowers a pass.
    assert m("passed", metrics={"ok": 3, "total": 4}).success_rate == 0.75
    assert m("passed", metrics={"success_rate": 7}).success_rate == 1.0  # clamped
    # Decorated calls that failed count, even when the test caught them.
    tolerated = {"calls": 32, "attempts": 32, "failures": 30}
    assert m("passed", runtime=tolerated).success_rate == pytest.approx(2 / 32)
    assert m("passed", runtime=tolerated, metrics={"ok": 1, "total": 2}).success_rate == (
        pytest.approx(2 / 32)
    )


def test_recovery_after_fault_window() -> None:
    runtime = {"calls": 5, "attempts": 7, "last_failure_at_s": 0.9, "recovered_at_s": 1.5}
    x = m(duration=3.0, runtime=runtime, metrics={"budget_s": 1.0}, window=(0.0, 1.0))
    assert x.recovered
    assert x.recovery_s == pytest.approx(0.5)
    f = evaluate(x)
    assert f.terms["recovery_speed"] == pytest.approx(1.0 / 1.5)
    assert f.terms["resource_efficiency"] == pytest.approx(5 / 7)


def test_not_recovered_scores_zero_recovery() -> None:
    runtime = {"calls": 2, "attempts": 2, "last_failure_at_s": 2.5, "recovered_at_s": None}
    x = m("failed", duration=3.0, runtime=runtime, window=(0.0, 1.0))
    assert not x.recovered
    assert evaluate(x).terms["recovery_speed"] == 0.0


def test_fault_never_surfaced_is_instant_recovery() -> None:
    x = m(duration=3.0, runtime={"calls": 4, "attempts": 4}, window=(0.5, 1.0))
    assert x.recovery_s == 0.0
    assert evaluate(x).terms["recovery_speed"] == 1.0


def test_without_fault_end_recovery_is_mean_call_time_against_baseline_budget() -> None:
    runtime = {"calls": 4, "attempts": 4, "latency_total_s": 2.0}
    x = m(duration=9.0, runtime=runtime, window=(0.0, 9.5))  # fault lasts the whole call
    assert x.recovery_s == pytest.approx(0.5)
    base = BaselineRef(recovery_s=1.5)
    assert evaluate(x, base).terms["recovery_speed"] == pytest.approx(1.5 / 2.0)
    # no budget anywhere: 1 s
    assert evaluate(x).terms["recovery_speed"] == pytest.approx(1.0 / 1.5)
    # a baseline that never stalled gives a 0.1 s floor, not 0
    assert evaluate(x, BaselineRef(recovery_s=0.0)).terms["recovery_speed"] == pytest.approx(
        0.1 / 0.6
    )


def test_cpu_against_baseline() -> None:
    base = [m(runtime={"calls": 1, "attempts": 1}, metrics={"cpu_time_s": 0.2})]
    cheap = m(runtime={"calls": 1, "attempts": 1}, metrics={"cpu_time_s": 0.1})
    dear = m(runtime={"calls": 1, "attempts": 2}, metrics={"cpu_time_s": 0.4})
    assert evaluate(cheap, base).terms["resource_efficiency"] == pytest.approx(1.0)
    assert evaluate(dear, base).terms["resource_efficiency"] == pytest.approx(0.5 * (0.5 + 0.5))


def test_weighted_score_and_extra_terms() -> None:
    x = m("passed", duration=1.0, runtime={"calls": 1, "attempts": 2, "latency_total_s": 1.0})
    f = evaluate(x)
    # success 1, recovery 1 / (1 + 1) (mean call time 1 s, budget 1 s), efficiency 1/2,
    # no speed term without a reference: the pass floor plus 0.9 x the weighted mean
    assert f.terms == {"success_rate": 1.0, "recovery_speed": 0.5, "resource_efficiency": 0.5}
    assert f.score == pytest.approx(0.1 + 0.9 * (0.6 + 0.1 + 0.1))
    g = evaluate(x, weights=(1, 0, 0))
    assert g.score == pytest.approx(1.0)
    h = evaluate(x, extra_terms=[{"p99": (1.0, 0.5)}, {"p99": (1.0, 1.5)}])
    assert h.terms["p99"] == pytest.approx(0.75)  # averaged, values clamped first
    assert h.score == pytest.approx(0.1 + 0.9 * (0.8 + 0.75) / 2.0)


def test_a_failure_scores_below_every_pass_whatever_it_recorded() -> None:
    failed = m(
        "failed",
        runtime={"calls": 10, "attempts": 10},
        metrics={"ok": 10, "total": 10, "recovery_s": 0.0, "budget_s": 1.0},
    )
    worst_pass = m(
        "passed",
        duration=100.0,
        runtime={"calls": 10, "attempts": 200, "failures": 9},
        metrics={"success_rate": 0.0},
    )
    assert evaluate(failed).score == 0.0
    assert evaluate(worst_pass).score >= PASS_FLOOR > 0.0
    # an extra term at full value cannot lift it either
    assert evaluate(failed, extra_terms=[{"custom": (10.0, 1.0)}]).score == 0.0


def test_slowdown_against_the_reference_run_lowers_the_score() -> None:
    fast = Measurement.from_iteration("passed", 0.02, {}, {}, None, reference_s=0.02)
    slow = Measurement.from_iteration("passed", 2.0, {}, {}, None, reference_s=0.02)
    assert evaluate(fast).terms["speed"] == pytest.approx(1.0)
    assert evaluate(slow).terms["speed"] == pytest.approx(0.07 / 2.05)
    assert evaluate(slow).score < evaluate(fast).score - 0.15
    # a test that got faster under faults keeps a speed of 1, never more
    quick = Measurement.from_iteration("passed", 0.01, {}, {}, None, reference_s=0.5)
    assert evaluate(quick).terms["speed"] == 1.0
    # without a reference the term is left out, not guessed
    assert "speed" not in evaluate(m("passed")).terms


def test_most_calls_failing_cannot_outscore_every_call_alive() -> None:
    lossy = m("passed", duration=0.05, runtime={"calls": 32, "attempts": 32, "failures": 30})
    kept = m(
        "passed",
        duration=3.0,
        window=(0.0, 3.5),
        runtime={"calls": 32, "attempts": 640, "failures": 0, "latency_total_s": 90.0},
    )
    assert evaluate(kept).score > evaluate(lossy).score


def test_extra_term_errors() -> None:
    x = m()
    with pytest.raises(ValueError, match="clashes"):
        evaluate(x, extra_terms=[{"success_rate": (1.0, 1.0)}])
    with pytest.raises(ValueError, match="expected \\(weight, value\\)"):
        evaluate(x, extra_terms=[{"t": "bad"}])  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="weights"):
        evaluate(x, weights=(1.0, 1.0))
    with pytest.raises(ValueError, match="weights"):
        evaluate(x, weights=(1.0, float("nan"), 0.0))


def test_skipped_measurements_are_ignored_and_mean_is_taken() -> None:
    ms = [m("passed"), m("failed"), m("skipped")]
    assert evaluate(ms).terms["success_rate"] == 0.5
    assert evaluate(ms).score == pytest.approx((evaluate(m("passed")).score + 0.0) / 2)
    assert evaluate([m("skipped")]).score == 0.0


def test_terms_always_in_unit_interval() -> None:
    x = m(
        duration=-1.0,
        runtime={"calls": -3, "attempts": "x", "latency_total_s": -5},
        metrics={"budget_s": -1, "cpu_time_s": float("inf")},
    )
    f = evaluate(x, BaselineRef(recovery_s=1.0, cpu_time_s=1.0))
    assert all(0.0 <= v <= 1.0 for v in f.terms.values())
    assert 0.0 <= f.score <= 1.0


def test_the_worked_example_of_docs_genome_md() -> None:
    def run(duration: float) -> Measurement:
        runtime = {"calls": 6, "attempts": 6, "latency_total_s": duration}
        return Measurement.from_iteration(
            "passed", duration, runtime, {}, (0.0, duration + 1), reference_s=0.02
        )

    fast, slow = evaluate(run(0.02)), evaluate(run(2.0))
    assert fast.score == pytest.approx(1.00, abs=0.005)
    assert slow.terms["recovery_speed"] == pytest.approx(0.750, abs=0.001)
    assert slow.terms["speed"] == pytest.approx(0.034, abs=0.001)
    assert slow.score == pytest.approx(0.52, abs=0.005)
    failed = Measurement.from_iteration(
        "failed", 2.0, {}, {"ok": 10, "total": 10}, None, reference_s=0.02
    )
    four_and_one = evaluate([run(2.0)] * 4 + [failed])
    assert four_and_one.score == pytest.approx(0.415, abs=0.005)


def test_a_gross_slowdown_cannot_clear_a_usual_gate() -> None:
    def passed(duration: float) -> float:
        m = Measurement.from_iteration("passed", duration, {}, {}, None, reference_s=0.02)
        return evaluate(m).score

    # Within ten times the no-fault run, speed is one term of the mean; past it, the
    # quality shrinks with the slowdown.
    assert passed(0.02) == pytest.approx(1.0, abs=0.005)
    assert passed(0.3) > 0.8
    scores = [passed(d) for d in (0.02, 0.3, 1.0, 3.0, 10.0)]
    assert scores == sorted(scores, reverse=True)
    assert passed(7.0) < 0.5  # 100x slower with the slack
