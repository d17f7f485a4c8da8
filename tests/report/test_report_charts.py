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


def test_no_fault_recorded_is_called_out() -> None:
    its = _its([(1, "passed")])
    run = {"chaos": True, "tests": [TestResult("t::a", "s", "low", "m", its).to_dict()]}
    assert any("No fault was recorded for t::a under s" in lsn.text for lsn in build_lessons(run))
