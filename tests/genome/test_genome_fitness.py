"""The fitness terms, exactly as docs/genome.md defines them."""

from __future__ import annotations

import pytest

from pytest_rafael.genome.fitness import BaselineRef, Measurement, evaluate


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
    assert m("failed", metrics={"success_rate": 0.75}).success_rate == 0.75
    assert m("passed", metrics={"ok": 3, "total": 4}).success_rate == 0.75
    assert m("passed", metrics={"success_rate": 7}).success_rate == 1.0  # clamped


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
    x = m("failed", duration=1.0, runtime={"calls": 1, "attempts": 1, "latency_total_s": 1.0})
    f = evaluate(x)
    # success 0, recovery 0 (failed, never answered after failing? no failure recorded ->
    # recovered is False because success is 0), efficiency 1
    assert f.terms == {"success_rate": 0.0, "recovery_speed": 0.0, "resource_efficiency": 1.0}
    assert f.score == pytest.approx(0.2)
    g = evaluate(x, weights=(1, 0, 0))
    assert g.score == 0.0
    h = evaluate(x, extra_terms=[{"p99": (1.0, 0.5)}, {"p99": (1.0, 1.5)}])
    assert h.terms["p99"] == pytest.approx(0.75)  # averaged, values clamped first
    assert h.score == pytest.approx((0.2 + 0.75) / 2.0)


def test_extra_term_errors() -> None:
    x = m()
    with pytest.raises(ValueError, match="clashes"):
        evaluate(x, extra_terms=[{"success_rate": (1.0, 1.0)}])
    with pytest.raises(ValueError, match="expected \\(weight, value\\)"):
        evaluate(x, extra_terms=[{"t": "bad"}])  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="weights"):
        evaluate(x, weights=(1.0, 1.0))


def test_skipped_measurements_are_ignored_and_mean_is_taken() -> None:
    ms = [m("passed"), m("failed"), m("skipped")]
    assert evaluate(ms).terms["success_rate"] == 0.5
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
