"""Chart geometry and lesson rules on their own."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from pytest_rafael.report.charts import MAX_POINTS, Series, decimate, line_chart, nice_ticks
from pytest_rafael.report.lessons import build_lessons
from pytest_rafael.results import IterationResult, TestResult

_ys = st.lists(st.none() | st.floats(min_value=-5, max_value=5), min_size=1, max_size=2000)


@given(_ys)
def test_decimation_keeps_extremes_and_bounds_size(ys: list[float | None]) -> None:
    points = [(float(n), y) for n, y in enumerate(ys)]
    out, _ = decimate(points, [])
    assert len(out) <= max(MAX_POINTS, len(points) if len(points) <= MAX_POINTS else 0) + 1
    values = [y for _, y in points if y is not None]
    kept = [y for _, y in out if y is not None]
    if values:
        assert min(kept) == min(values)
        assert max(kept) == max(values)
    assert [x for x, _ in out] == sorted(x for x, _ in out)


@given(st.floats(-1e6, 1e6), st.floats(0.001, 1e6))
def test_ticks_fall_inside_the_range_and_are_round(lo: float, span: float) -> None:
    ticks = nice_ticks(lo, lo + span)
    assert 2 <= len(ticks) <= 11
    eps = span * 1e-6
    assert lo - eps <= ticks[0]
    assert ticks[-1] <= lo + span + eps
    steps = {round(b - a, 6) for a, b in itertools.pairwise(ticks)}
    assert len({round(st / max(steps), 3) for st in steps}) == 1  # evenly spaced


def test_chart_widens_the_axis_for_values_out_of_range() -> None:
    svg = line_chart([Series("x", ((0.0, 0.5), (1.0, 3.0)))], title="t", x_label="x", y_label="y")
    assert ">3</text>" in svg
    assert "<path" in svg


def _its(values: list[tuple[float, str]]) -> tuple[IterationResult, ...]:
    return tuple(
        IterationResult(
            nodeid="t::a",
            scenario="s",
            index=n,
            outcome=o,
            duration_s=1.0,
            error=None if o == "passed" else "OSError: x",
            genome={"module": "m", "generation": n, "genes": {"retry": {"max_attempts": v}}},
            fitness=0.9 if o == "passed" else 0.0,
        )
        for n, (v, o) in enumerate(values)
    )


def test_gene_lesson_says_at_least_when_higher_values_passed() -> None:
    its = _its([(1, "failed"), (2, "failed"), (4, "passed"), (5, "passed")])
    run = {"chaos": True, "tests": [TestResult("t::a", "s", "low", "m", its).to_dict()]}
    texts = [lesson.text for lesson in build_lessons(run)]
    assert (
        "Under s, t::a passed with retry.max_attempts at least 4 (2 iterations) and "
        "failed with 2 or less (2 iterations)."
    ) in texts


def test_no_gene_lesson_when_values_overlap() -> None:
    its = _its([(1, "failed"), (3, "passed"), (3, "failed"), (5, "passed")])
    run = {"chaos": True, "tests": [TestResult("t::a", "s", "low", "m", its).to_dict()]}
    assert not [lesson for lesson in build_lessons(run) if "retry" in lesson.text]


def test_unscored_iterations_are_called_out_with_the_real_cause() -> None:
    why = (
        "scenario 's': the test call ended after 0.412 s, before its first fault at "
        "0.6 s; nothing was injected (make the test last longer or start the fault "
        "earlier)"
    )
    its = tuple(
        IterationResult(
            nodeid="t::a",
            scenario="s",
            index=n,
            outcome="error",
            duration_s=0.412,
            error=why,
            fitness=None,
        )
        for n in range(2)
    )
    run = {"chaos": True, "tests": [TestResult("t::a", "s", "low", None, its).to_dict()]}
    texts = [lsn.text for lsn in build_lessons(run)]
    assert (
        f"2 of 2 iterations of t::a under s measured nothing about resilience and were "
        f"not scored: {why}."
    ) in texts
    # not a resilience failure, and nothing about targets it did not check
    assert not any("failed with" in t or "targets" in t for t in texts)
