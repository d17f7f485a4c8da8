"""Write every report file of one run; the plugin and ``rafael report`` both call this."""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_rafael.common.atomic import atomic_write
from pytest_rafael.report.html import render_html
from pytest_rafael.report.lessons import build_lessons
from pytest_rafael.report.prometheus import render_metrics
from pytest_rafael.report.summary import render_summary


@dataclass(frozen=True)
class ReportPaths:
    index_html: Path
    results_json: Path
    summary_md: Path
    metrics_prom: Path


def _write(path: Path, text: str) -> None:
    # Replace atomically: a CI job uploading the folder never sees half a file.
    atomic_write(path, text, mode=0o644)


def results_json_text(results: Mapping[str, Any]) -> str:
    """results.json, indented for the first three levels (run, tests, one test) and compact
    below: each field of a test on one line, each iteration on its own line. The same JSON
    value as ``json.dumps(indent=2)``, written by the C encoder (``indent`` forces the
    pure-Python one, several times slower on a 10,000-iteration run); a diff shows one line
    per changed iteration."""
    return _pretty(results, 0) + "\n"


_COMPACT = json.JSONEncoder(default=str)
_INDENTED_LEVELS = 3


def _pretty(value: Any, level: int, one_per_line: bool = False) -> str:
    pad, inner = "  " * level, "  " * (level + 1)
    if isinstance(value, Mapping) and value and level < _INDENTED_LEVELS:
        items = [
            f"{inner}{_COMPACT.encode(str(k))}: {_pretty(v, level + 1, k == 'iterations')}"
            for k, v in value.items()
        ]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(value, (list, tuple)) and value and (level < _INDENTED_LEVELS or one_per_line):
        if one_per_line:
            rows = [inner + _COMPACT.encode(v) for v in value]
        else:
            rows = [inner + _pretty(v, level + 1) for v in value]
        return "[\n" + ",\n".join(rows) + "\n" + pad + "]"
    return _COMPACT.encode(value)


def write_reports(
    results: Mapping[str, Any], out_dir: Path, history: Sequence[Mapping[str, Any]] = ()
) -> ReportPaths:
    """Write index.html, results.json, summary.md and metrics.prom into ``out_dir``;
    append summary.md to ``$GITHUB_STEP_SUMMARY`` when that is set.

    ``history`` is earlier runs' results dicts, oldest first (``Store.runs()``); a run
    with this run's id is ignored there, so passing every stored run is fine.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = ReportPaths(
        out / "index.html", out / "results.json", out / "summary.md", out / "metrics.prom"
    )
    lessons = build_lessons(results)
    summary = render_summary(results, lessons)
    _write(paths.results_json, results_json_text(results))
    _write(paths.index_html, render_html(results, history, lessons))
    _write(paths.summary_md, summary)
    _write(paths.metrics_prom, render_metrics(results))
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if step_summary:
        try:
            with open(step_summary, "a", encoding="utf-8") as fh:
                fh.write(summary + "\n")
        except OSError as exc:
            # The report files are written; a read-only summary file must not fail the run.
            warnings.warn(
                f"GITHUB_STEP_SUMMARY={step_summary}: cannot append: {exc}",
                RuntimeWarning,
                stacklevel=2,
            )
    return paths


PLAIN_FAILURES_DIR = "hypothesis"


def write_plain_failures(failures: Mapping[str, Any], out_dir: Path) -> Path:
    """A run without ``--rafael-chaos`` whose Hypothesis fault schedules failed: the
    shrunk schedules go to ``<out_dir>/hypothesis/failures.json`` (a place of their
    own), and the last chaos report and its history are left as they were."""
    folder = Path(out_dir) / PLAIN_FAILURES_DIR
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "failures.json"
    _write(path, json.dumps({"chaos": False, **failures}, indent=2, default=str) + "\n")
    return path
