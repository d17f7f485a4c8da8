"""The per-test sections and the scenario matrix of the HTML report."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from markupsafe import Markup

from pytest_rafael.common.path_coverage import pair_coverage
from pytest_rafael.report.charts import Series, line_chart
from pytest_rafael.report.history_chart import _run_label
from pytest_rafael.report.lessons import Lesson
from pytest_rafael.report.model import (
    FAILED,
    GeneChange,
    baseline_genome,
    best_fitness,
    candidate_iterations,
    done,
    fault_text,
    flat_genes,
    fmt_num,
    fmt_seconds,
    gate_failed_keys,
    genome_brief,
    genome_diff,
    iterations,
    num,
    observed_text,
    shipped_fitness,
    shipped_success,
    shipped_success_text,
    test_key,
)

# Caps that keep a 10,000-iteration run small and readable; every cap is announced in
# the page with what was left out (results.json always has everything).
EDGE_ROWS = 100  # an iterations table shows at most the first and last EDGE_ROWS

ROW_BUDGET = 3000  # iteration rows across all tables: fewer per table when tests are many

MIN_EDGE_ROWS = 10

MAX_DETAILED = 200  # test sections with tables and charts; the rest get a summary row

MAX_MATRIX_ROWS = 500

OPEN_LIMIT = 12  # up to this many test sections start expanded


@dataclass(frozen=True)
class Row:
    index: Any
    outcome: str
    duration: str
    fitness: str
    faults: tuple[str, ...]
    observed: tuple[str, ...]
    genome: str
    error: str
    is_gap: bool = False


@dataclass(frozen=True)
class Gap:
    text: str
    is_gap: bool = True


@dataclass(frozen=True)
class TestSection:
    anchor: str
    nodeid: str
    scenario: str
    severity: str
    module: str
    total: int
    passed: int
    failed: int
    skipped: int
    success_rate: str  # the shipped genome's: "2 of 3 (67 %)"
    candidates: str  # the other iterations' (candidates'): "1 of 2 passed"
    baseline: str
    best: str
    min_fitness: str
    adopted: bool
    proposal_id: str
    below_gate: bool
    rows: tuple[Row | Gap, ...]
    iteration_chart: Markup
    runs_chart: Markup | None
    runs_note: str
    diff: tuple[GeneChange, ...]
    recommendations: tuple[Mapping[str, Any], ...]
    lessons: tuple[Lesson, ...]
    open: bool
    best_value: float | None = None
    baseline_n: str = "?"
    best_n: str = "?"
    reference: str = ""
    shipped_failed: bool = False  # a measurement of the shipped genome failed
    not_exercised: bool = False  # passed, yet exercised none of its resilience paths


@dataclass(frozen=True)
class MatrixCell:
    text: str
    css: str
    anchor: str | None
    title: str
    # "never ran: retry, timeout", "never held: 'x'", "broke: 'y'": the shipped genome's
    gaps: tuple[str, ...] = ()
    not_exercised: bool = False  # passed, yet none of its expected paths ran (or broke)


@dataclass(frozen=True)
class Matrix:
    scenarios: tuple[str, ...]
    rows: tuple[tuple[str, tuple[MatrixCell | None, ...]], ...]
    hidden: int


def fitness_class(value: float | None) -> str:
    if value is None:
        return "fna"
    return f"f{max(0, min(10, round(value * 10)))}"


def edge_rows(detailed: int) -> int:
    """Rows shown at each end of a table, so a run's tables stay within ROW_BUDGET."""
    return max(MIN_EDGE_ROWS, min(EDGE_ROWS, ROW_BUDGET // max(1, 2 * detailed)))


def _rows(test: Mapping[str, Any], edge: int) -> tuple[Row | Gap, ...]:
    its = iterations(test)
    base = flat_genes(baseline_genome(test))

    def row(it: Mapping[str, Any]) -> Row:
        faults = it.get("faults") or []
        return Row(
            index=it.get("index"),
            outcome=str(it.get("outcome", "?")),
            duration=fmt_seconds(it.get("duration_s")),
            fitness=fmt_num(it.get("fitness")),
            faults=tuple(fault_text(f) for f in faults if isinstance(f, dict)),
            observed=tuple(
                t for t in (observed_text(f) for f in faults if isinstance(f, dict)) if t
            ),
            genome=genome_brief(it.get("genome"), base),
            error=str(it.get("error") or ""),
        )

    if len(its) <= 2 * edge:
        return tuple(row(it) for it in its)
    hidden = its[edge:-edge]
    counts = Counter(str(i.get("outcome")) for i in hidden)
    fits = [v for v in (num(i.get("fitness")) for i in hidden) if v is not None]
    fit_text = (
        (
            f"; fitness min {fmt_num(min(fits))}, mean {fmt_num(sum(fits) / len(fits))}, "
            f"max {fmt_num(max(fits))}"
        )
        if fits
        else ""
    )
    gap = Gap(
        f"{len(hidden):,} iterations not shown ("
        + ", ".join(f"{n:,} {k}" for k, n in counts.most_common())
        + f"{fit_text}); results.json has every iteration."
    )
    return (*(row(i) for i in its[:edge]), gap, *(row(i) for i in its[-edge:]))


def _iteration_chart(test: Mapping[str, Any]) -> Markup:
    its = sorted(iterations(test), key=lambda i: num(i.get("index")) or 0)
    marks = {"passed": "pass", "failed": "fail", "error": "fail", "skipped": "skip"}
    series = Series(
        "fitness",
        tuple((num(i.get("index")) or 0.0, num(i.get("fitness"))) for i in its),
        tuple(marks.get(str(i.get("outcome")), "") for i in its),
    )
    _nodeid, scenario = test_key(test)
    return line_chart(
        [series],
        title=f"Fitness per iteration under {scenario}",
        x_label="iteration",
        y_label="fitness",
        threshold=num(test.get("min_fitness")),
    )


def _runs_index(
    runs: Sequence[Mapping[str, Any]],
) -> list[dict[tuple[str, str], Mapping[str, Any]]]:
    return [{test_key(t): t for t in run.get("tests") or []} for run in runs]


def _runs_chart(
    key: tuple[str, str],
    runs: Sequence[Mapping[str, Any]],
    index: Sequence[Mapping[tuple[str, str], Mapping[str, Any]]],
    min_fitness: float | None,
) -> tuple[Markup | None, str]:
    found = [(n, idx[key]) for n, idx in enumerate(index) if key in idx]
    if len(found) < 2:
        return None, "First run of this test and scenario in the store: no trend yet."
    labels = {float(n + 1): _run_label(runs[n]) for n, _ in found}
    best = Series("best fitness", tuple((float(n + 1), best_fitness(t)) for n, t in found))
    base = Series(
        "baseline fitness", tuple((float(n + 1), num(t.get("baseline_fitness"))) for n, t in found)
    )
    chart = line_chart(
        [best, base],
        title=f"Fitness across {len(found)} runs",
        x_label="run (started, UTC)",
        y_label="fitness",
        x_tick_labels=labels,
        threshold=min_fitness,
    )
    return chart, ""


def _sections(
    results: Mapping[str, Any], runs: Sequence[Mapping[str, Any]], lessons: Sequence[Lesson]
) -> tuple[list[TestSection], list[TestSection]]:
    tests = list(results.get("tests") or [])
    below = gate_failed_keys(results)
    index = _runs_index(runs)
    recs, by_test = _by_test(results, lessons)

    def rank(n: int) -> tuple[int, float]:
        shipped = shipped_fitness(tests[n])
        return (0 if test_key(tests[n]) in below else 1, -1.0 if shipped is None else shipped)

    detailed = set(sorted(range(len(tests)), key=rank)[:MAX_DETAILED])
    edge = edge_rows(len(detailed))
    full: list[TestSection] = []
    brief: list[TestSection] = []
    for n, test in enumerate(tests):
        key = test_key(test)
        ran = done(test)
        its = iterations(test)
        failed = sum(i.get("outcome") in FAILED for i in ran)
        is_detailed = n in detailed
        min_f = num(test.get("min_fitness"))
        chart, note = _runs_chart(key, runs, index, min_f) if is_detailed else (None, "")
        best_g = test.get("best_genome")
        section = TestSection(
            anchor=f"t{n}",
            nodeid=key[0],
            scenario=key[1],
            severity=str(test.get("severity") or "?"),
            module=str(test.get("module") or "none"),
            total=len(its),
            passed=sum(i.get("outcome") == "passed" for i in ran),
            failed=failed,
            skipped=len(its) - len(ran),
            success_rate=shipped_success_text(test),
            candidates=_candidates_text(test),
            baseline=fmt_num(test.get("baseline_fitness")),
            best=fmt_num(best_fitness(test)),
            min_fitness=fmt_num(min_f),
            adopted=bool(test.get("adopted")),
            proposal_id=str(test.get("proposal_id") or ""),
            below_gate=key in below,
            rows=_rows(test, edge) if is_detailed else (),
            iteration_chart=_iteration_chart(test) if is_detailed else Markup(""),
            runs_chart=chart,
            runs_note=note,
            diff=_diff(test, best_g) if is_detailed else (),
            recommendations=tuple(recs.get(key, ())),
            lessons=tuple(by_test.get(key, ())),
            open=len(tests) <= OPEN_LIMIT or key in below,
            best_value=best_fitness(test),
            baseline_n=str(test.get("baseline_n", "?")),
            best_n=str(test.get("best_n", "?")),
            reference=_reference_text(test.get("reference")),
            shipped_failed=_shipped_failed(test),
            not_exercised=bool(test.get("not_exercised")),
        )
        (full if is_detailed else brief).append(section)
    return full, brief


def _by_test(
    results: Mapping[str, Any], lessons: Sequence[Lesson]
) -> tuple[dict[tuple[str, str], list[Mapping[str, Any]]], dict[tuple[str, str], list[Lesson]]]:
    """The vault's recommendations and the lessons of each (test, scenario) pair."""
    recs: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for rec in (results.get("vault") or {}).get("recommendations") or []:
        recs.setdefault((str(rec.get("nodeid")), str(rec.get("scenario"))), []).append(rec)
    by_test: dict[tuple[str, str], list[Lesson]] = {}
    for lesson in lessons:
        if lesson.nodeid is not None:
            by_test.setdefault((lesson.nodeid, str(lesson.scenario)), []).append(lesson)
    return recs, by_test


def _reference_text(ref: Any) -> str:
    if not isinstance(ref, Mapping):
        return ""
    if ref.get("outcome") != "passed":
        return f"the run without faults did not pass ({ref.get('error') or ref.get('outcome')})"
    return f"{fmt_seconds(ref.get('duration_s'))} without faults"


def _shipped_failed(test: Mapping[str, Any]) -> bool:
    counts = shipped_success(test)
    return counts is None or counts[0] < counts[1]


def _diff(test: Mapping[str, Any], best_genome: Any) -> tuple[Any, ...]:
    """Shipped against best candidate, only for a candidate that beat the shipped genome
    (or was proposed): the best of candidates that did not would read as a change
    evolution suggests."""
    if best_fitness(test) is None and not test.get("proposal_id"):
        return ()
    return tuple(genome_diff(baseline_genome(test), best_genome))


def _candidates_text(test: Mapping[str, Any]) -> str:
    passed, ran = candidate_iterations(test)
    return f"{passed} of {ran} passed" if ran else "none ran"


# A pair that passed without exercising its resilience: amber, never a green number.
NOT_EXERCISED_CLASS = "nx"


def _matrix(results: Mapping[str, Any]) -> Matrix:
    tests = list(results.get("tests") or [])
    scenarios = tuple(dict.fromkeys(test_key(t)[1] for t in tests))
    rows: dict[str, dict[str, MatrixCell]] = {}
    for n, test in enumerate(tests):
        nodeid, scenario = test_key(test)
        best = best_fitness(test)
        shipped = shipped_fitness(test)
        gaps = pair_coverage(test).gaps
        idle = bool(test.get("not_exercised"))
        rows.setdefault(nodeid, {})[scenario] = MatrixCell(
            text=fmt_num(shipped),
            css=NOT_EXERCISED_CLASS if idle else fitness_class(shipped),
            anchor=f"t{n}",
            title=(
                f"{nodeid} under {scenario}: shipped genome {fmt_num(shipped)} "
                f"(n={test.get('baseline_n', '?')}), best candidate {fmt_num(best)}, "
                f"shipped passed {shipped_success_text(test)}"
                + ("; passed, not exercised" if idle else "")
                + (f"; {'; '.join(gaps)}" if gaps else "")
            ),
            gaps=gaps,
            not_exercised=idle,
        )
    items = list(rows.items())
    shown = items[:MAX_MATRIX_ROWS]
    return Matrix(
        scenarios,
        tuple((nodeid, tuple(cells.get(s) for s in scenarios)) for nodeid, cells in shown),
        len(items) - len(shown),
    )
