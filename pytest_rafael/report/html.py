"""``index.html``: one self-contained file (inline CSS and SVG, no script, no URL).

Rendering is split in two: :func:`build_context` turns the results dict into plain view
objects (all numbers decided here, so tests can compare them with the dict), and a jinja2
template with autoescape on lays them out. Untrusted strings reach the template as plain
``str`` and are escaped there; only SVG built by :mod:`charts` (which escapes its own
text) is passed as ``Markup``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import jinja2
from markupsafe import Markup

from pytest_rafael.report.charts import Series, line_chart
from pytest_rafael.report.history import MAX_HISTORY_RUNS
from pytest_rafael.report.lessons import Lesson, build_lessons
from pytest_rafael.report.model import (
    FAILED,
    GeneChange,
    baseline_genome,
    best_fitness,
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
    success_rate,
    test_key,
)
from pytest_rafael.report.next_steps import next_steps, review_commands
from pytest_rafael.report.paths import coverage_of

# Caps that keep a 10,000-iteration run small and readable; every cap is announced in
# the page with what was left out (results.json always has everything).
EDGE_ROWS = 100  # an iterations table shows at most the first and last EDGE_ROWS
ROW_BUDGET = 3000  # iteration rows across all tables: fewer per table when tests are many
MIN_EDGE_ROWS = 10
MAX_DETAILED = 200  # test sections with tables and charts; the rest get a summary row
MAX_MATRIX_ROWS = 500
MAX_LESSONS = 100
MAX_SERIES = 8  # lines per history chart
OPEN_LIMIT = 12  # up to this many test sections start expanded

CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; script-src 'none'; "
    "object-src 'none'; base-uri 'none'; form-action 'none'"
)


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
    success_rate: str
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


@dataclass(frozen=True)
class MatrixCell:
    text: str
    css: str
    anchor: str | None
    title: str
    gaps: tuple[str, ...] = ()  # resilience paths never run, sometimes/always findings


@dataclass(frozen=True)
class Matrix:
    scenarios: tuple[str, ...]
    rows: tuple[tuple[str, tuple[MatrixCell | None, ...]], ...]
    hidden: int


@dataclass(frozen=True)
class History:
    runs: int
    overall_chart: Markup | None
    module_chart: Markup | None
    scenario_chart: Markup | None
    columns: tuple[str, ...]  # run labels of the numeric table (last few runs)
    module_rows: tuple[tuple[str, tuple[str, ...]], ...]
    scenario_rows: tuple[tuple[str, tuple[str, ...]], ...]
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def fitness_class(value: float | None) -> str:
    if value is None:
        return "fna"
    return f"f{max(0, min(10, round(value * 10)))}"


def _run_label(run: Mapping[str, Any]) -> str:
    started = str(run.get("started_at") or "")
    try:
        return datetime.fromisoformat(started.replace("Z", "+00:00")).strftime("%m-%d %H:%M")
    except ValueError:
        return str(run.get("run_id", "?"))[:11]


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
            success_rate=_pct(success_rate(test)),
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
            diff=tuple(genome_diff(baseline_genome(test), best_g)) if is_detailed else (),
            recommendations=tuple(recs.get(key, ())),
            lessons=tuple(by_test.get(key, ())),
            open=len(tests) <= OPEN_LIMIT or key in below,
            best_value=best_fitness(test),
            baseline_n=str(test.get("baseline_n", "?")),
            best_n=str(test.get("best_n", "?")),
            reference=_reference_text(test.get("reference")),
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


def _pct(value: float | None) -> str:
    return (
        "n/a"
        if value is None
        else f"{value * 100:.0f} %"
        if value in (0, 1)
        else f"{value * 100:.1f} %"
    )


def _matrix(results: Mapping[str, Any]) -> Matrix:
    tests = list(results.get("tests") or [])
    scenarios = tuple(dict.fromkeys(test_key(t)[1] for t in tests))
    rows: dict[str, dict[str, MatrixCell]] = {}
    for n, test in enumerate(tests):
        nodeid, scenario = test_key(test)
        best, rate = best_fitness(test), success_rate(test)
        shipped = shipped_fitness(test)
        gaps = coverage_of(test.get("iterations") or ()).gaps
        rows.setdefault(nodeid, {})[scenario] = MatrixCell(
            text=fmt_num(shipped),
            css=fitness_class(shipped),
            anchor=f"t{n}",
            title=(
                f"{nodeid} under {scenario}: shipped genome {fmt_num(shipped)} "
                f"(n={test.get('baseline_n', '?')}), best candidate {fmt_num(best)}, "
                f"success {_pct(rate)}" + (f"; never ran: {', '.join(gaps)}" if gaps else "")
            ),
            gaps=gaps,
        )
    items = list(rows.items())
    shown = items[:MAX_MATRIX_ROWS]
    return Matrix(
        scenarios,
        tuple((nodeid, tuple(cells.get(s) for s in scenarios)) for nodeid, cells in shown),
        len(items) - len(shown),
    )


def _group_scores(run: Mapping[str, Any], field_name: str) -> dict[str, float]:
    """Mean best fitness of a run's tests per module (or per scenario)."""
    acc: dict[str, list[float]] = {}
    for test in run.get("tests") or []:
        value = best_fitness(test)
        if value is not None:
            acc.setdefault(str(test.get(field_name) or "none"), []).append(value)
    return {k: sum(v) / len(v) for k, v in acc.items()}


def _history(runs: Sequence[Mapping[str, Any]]) -> History:
    labels = {float(n + 1): _run_label(r) for n, r in enumerate(runs)}
    xs = [float(n + 1) for n in range(len(runs))]
    charts: dict[str, Markup | None] = {}
    tables: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = {}
    last = list(range(max(0, len(runs) - 8), len(runs)))
    for field_name in ("module", "scenario"):
        charts[field_name], tables[field_name] = _group_history(runs, field_name, xs, labels, last)
    return History(
        runs=len(runs),
        overall_chart=_overall_chart(runs, xs, labels) if len(runs) > 1 else None,
        module_chart=charts["module"],
        scenario_chart=charts["scenario"],
        columns=tuple(f"#{n + 1} {_run_label(runs[n])}" for n in last),
        module_rows=tables["module"],
        scenario_rows=tables["scenario"],
        note=""
        if len(runs) > 1
        else "This is the first run in the store: trends appear from the second run on.",
    )


def _overall_chart(
    runs: Sequence[Mapping[str, Any]], xs: list[float], labels: dict[float, str]
) -> Markup:
    def score(key: str) -> Series:
        return Series(
            f"{key.split('_')[0]} score",
            tuple(
                (x, num((r.get("delta") or {}).get(key))) for x, r in zip(xs, runs, strict=False)
            ),
        )

    return line_chart(
        [score("current_score"), score("baseline_score")],
        title=f"Resilience score across {len(runs)} runs",
        x_label="run (started, UTC)",
        y_label="score",
        x_tick_labels=labels,
    )


def _group_history(
    runs: Sequence[Mapping[str, Any]],
    field_name: str,
    xs: list[float],
    labels: dict[float, str],
    last: list[int],
) -> tuple[Markup | None, tuple[tuple[str, tuple[str, ...]], ...]]:
    """The chart and the table of the mean best fitness per module (or scenario)."""
    scores = [_group_scores(r, field_name) for r in runs]
    names = sorted({k for s in scores for k in s}, key=lambda k: (-sum(k in s for s in scores), k))
    table = tuple((name, tuple(fmt_num(scores[n].get(name)) for n in last)) for name in names)
    series = [
        Series(name, tuple((x, s.get(name)) for x, s in zip(xs, scores, strict=False)))
        for name in names[:MAX_SERIES]
    ]
    if len(runs) <= 1 or not series:
        return None, table
    chart = line_chart(
        series,
        title=f"Mean best fitness per {field_name} across {len(runs)} runs"
        + (f" ({MAX_SERIES} of {len(names)} shown)" if len(names) > MAX_SERIES else ""),
        x_label="run (started, UTC)",
        y_label="fitness",
        x_tick_labels=labels,
    )
    return chart, table


def build_context(
    results: Mapping[str, Any],
    history: Sequence[Mapping[str, Any]],
    lessons: Sequence[Lesson] | None = None,
) -> dict[str, Any]:
    run_id = results.get("run_id")
    earlier = [r for r in history if isinstance(r, Mapping) and r.get("run_id") != run_id]
    runs = [*earlier, results][-MAX_HISTORY_RUNS:]
    lessons = build_lessons(results) if lessons is None else list(lessons)
    full, brief = _sections(results, runs, lessons)
    tests = list(results.get("tests") or [])
    all_its = [i for t in tests for i in iterations(t)]
    outcomes = Counter(str(i.get("outcome")) for i in all_its)
    gate = results.get("gate") or {}
    failures = [str(x) for x in gate.get("failures") or []]
    return {
        "csp": CSP,
        "run_id": str(run_id or "?"),
        "started_at": str(results.get("started_at") or "?"),
        "finished_at": str(results.get("finished_at") or "?"),
        "duration": fmt_seconds(results.get("duration_s")),
        "seed": str(results.get("seed", "?")),
        "chaos": bool(results.get("chaos")),
        "toxiproxy_url": str(results.get("toxiproxy_url") or ""),
        "actor": str(results.get("actor") or ""),
        "interrupted": str(results.get("interrupted_by") or "?")
        if results.get("status") == "interrupted"
        else None,
        "capped_metrics": [str(x) for x in results.get("capped_metrics") or []],
        "gate_passed": bool(gate.get("passed", True)),
        "gate_min": fmt_num(gate.get("min_fitness")),
        "gate_has_min": num(gate.get("min_fitness")) is not None,
        "gate_set": num(gate.get("min_fitness")) is not None
        or any(num(t.get("min_fitness")) is not None for t in tests),
        "gate_failures": failures[:50],
        "gate_failures_hidden": max(0, len(failures) - 50),
        "n_tests": len(tests),
        "n_iterations": len(all_its),
        "outcomes": outcomes.most_common(),
        "delta": _delta(results.get("delta") or {}),
        "matrix": _matrix(results),
        "sections": full,
        "brief_sections": brief,
        "history": _history(runs),
        "lessons": lessons[:MAX_LESSONS],
        "lessons_hidden": max(0, len(lessons) - MAX_LESSONS),
        "vault": _vault(results.get("vault")),
        "guardian": _guardian(results.get("guardian")),
        "next_steps": next_steps(results),
        "hypothesis": _hypothesis(results),
        "has_hypothesis": "hypothesis" in results,
        "fitness_class": fitness_class,
    }


def _delta(delta: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "baseline": fmt_num(delta.get("baseline_score")),
        "current": fmt_num(delta.get("current_score")),
        "improvement": _signed_pct(delta.get("improvement_pct")),
        "improvement_value": num(delta.get("improvement_pct")),
        "potential": fmt_num(delta.get("potential_score")),
        "potential_value": num(delta.get("potential_score")),
        "potential_improvement": _signed_pct(delta.get("potential_improvement_pct")),
        "mitigated": [str(x) for x in delta.get("threats_mitigated") or []],
        "vulnerabilities": [str(x) for x in delta.get("vulnerabilities") or []],
    }


def _hypothesis(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The failing fault schedules Hypothesis shrank, with the YAML to replay each."""
    return [
        {
            "nodeid": str(f.get("nodeid")),
            "schedule": [fault_text(x) for x in f.get("schedule") or [] if isinstance(x, dict)],
            "yaml": str(f.get("yaml") or ""),
        }
        for f in (results.get("hypothesis") or {}).get("failures") or []
    ]


def _s(value: Any) -> str:
    return "" if value is None else str(value)


def _vault(raw: Any) -> dict[str, Any] | None:
    """The optional vault section with every field present (missing ones empty)."""
    if not isinstance(raw, Mapping):
        return None
    recs = []
    for rec in raw.get("recommendations") or []:
        patterns = [
            {
                "id": _s(p.get("id")),
                "name": _s(p.get("name")),
                "category": _s(p.get("category")),
                "reliability_score": p.get("reliability_score"),
                "observed_score": p.get("observed_score"),
                "why": _s(p.get("why")),
            }
            for p in rec.get("patterns") or []
            if isinstance(p, Mapping)
        ]
        recs.append(
            {
                "nodeid": _s(rec.get("nodeid")),
                "scenario": _s(rec.get("scenario")),
                "patterns": patterns,
            }
        )
    return {"recommendations": recs}


def _guardian(raw: Any) -> dict[str, Any] | None:
    """The optional guardian section with every field present (missing ones empty)."""
    if not isinstance(raw, Mapping):
        return None
    audit = raw.get("audit")
    norm_audit = None
    if isinstance(audit, Mapping):
        norm_audit = {
            "entries": audit.get("entries", 0),
            "verified": bool(audit.get("verified")),
            "first_broken": _s(audit.get("first_broken")),
            "hmac": bool(audit.get("hmac")),
            "head": _head(audit.get("head")),
        }
    proposals = [
        {
            "id": _s(p.get("id")),
            "module": _s(p.get("module")),
            "impact": _s(p.get("impact")),
            "status": _s(p.get("status")),
            "reasons": [_s(r) for r in p.get("reasons") or []],
            "commands": review_commands(p.get("id")) if p.get("status") == "pending" else (),
            "approvals": [
                {"by": _s(a.get("by")), "role": _s(a.get("role")), "at": _s(a.get("at"))}
                for a in p.get("approvals") or []
                if isinstance(a, Mapping)
            ],
        }
        for p in raw.get("proposals") or []
        if isinstance(p, Mapping)
    ]
    return {"audit": norm_audit, "proposals": proposals}


def _head(raw: Any) -> dict[str, str] | None:
    """The audit head at the end of the run (entry id and hash), if recorded."""
    if not isinstance(raw, Mapping) or raw.get("id") is None:
        return None
    return {"id": _s(raw.get("id")), "hash": _s(raw.get("hash"))}


def _signed_pct(value: Any) -> str:
    v = num(value)
    return "n/a" if v is None else f"{v:+.1f} %"


def _bytecode_cache() -> jinja2.BytecodeCache | None:
    """Compiled templates kept between processes (Jinja's per-user, owner-only folder
    under the temp dir): compiling the page's template costs a `rafael report` process
    more than reading the store's history. None where that folder cannot be had."""
    try:
        return jinja2.FileSystemBytecodeCache()
    except (OSError, RuntimeError):
        return None


_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("pytest_rafael.report", "templates"),
    bytecode_cache=_bytecode_cache(),
    autoescape=True,  # every template, whatever its file name
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_ENV.filters["num"] = fmt_num


def render_html(
    results: Mapping[str, Any],
    history: Sequence[Mapping[str, Any]] = (),
    lessons: Sequence[Lesson] | None = None,
) -> str:
    """The page; ``lessons`` saves building them twice when the caller already has them."""
    context = build_context(results, history, lessons)
    return _ENV.get_template("index.html.j2").render(**context)
