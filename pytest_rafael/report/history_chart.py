"""The run history of the HTML report: one series per test group, labelled
by run."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from markupsafe import Markup

from pytest_rafael.report.charts import Series, line_chart
from pytest_rafael.report.model import (
    best_fitness,
    fmt_num,
    num,
    shipped_fitness,
)

MAX_SERIES = 8  # lines per history chart


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


def _run_label(run: Mapping[str, Any]) -> str:
    started = str(run.get("started_at") or "")
    try:
        return datetime.fromisoformat(started.replace("Z", "+00:00")).strftime("%m-%d %H:%M")
    except ValueError:
        return str(run.get("run_id", "?"))[:11]


def _group_scores(run: Mapping[str, Any], field_name: str) -> dict[str, float]:
    """Mean best fitness of a run's tests per module (or per scenario): per test, the
    best measured genome's, i.e. the shipped genome's where no candidate beat it. Leaving
    those tests out made a scenario whose other test scored 0 in every run look better.
    A test whose shipped genome was not measured has no ``baseline_fitness``. (The
    store's summaries of earlier runs carry no ``baseline_n``: asking for it dropped
    their tests without a candidate, and the history rewrote what those runs scored.)"""
    acc: dict[str, list[float]] = {}
    for test in run.get("tests") or []:
        value = best_fitness(test)
        if value is None:
            value = shipped_fitness(test)
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
