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
from pytest_rafael.common.results_text import results_json_text
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


def write_reports(
    results: Mapping[str, Any],
    out_dir: Path,
    history: Sequence[Mapping[str, Any]] = (),
    results_text: str | None = None,
) -> ReportPaths:
    """Write index.html, results.json, summary.md and metrics.prom into ``out_dir``;
    append summary.md to ``$GITHUB_STEP_SUMMARY`` when that is set.

    ``history`` is earlier runs' results dicts, oldest first (``Store.runs()``); a run
    with this run's id is ignored there, so passing every stored run is fine.
    ``results_text``: ``results_json_text(results)`` when the caller has it already (the
    store keeps each run's document in that form), so it is not encoded again.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = ReportPaths(
        out / "index.html", out / "results.json", out / "summary.md", out / "metrics.prom"
    )
    lessons = build_lessons(results)
    summary = render_summary(results, lessons)
    _write(paths.results_json, results_text or results_json_text(results))
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
