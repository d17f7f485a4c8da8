"""Earlier runs for the report's trend charts, read from the store as summaries.

The charts need each run's delta and its per-test fitness rows, not the whole results
document: parsing every stored 10,000-iteration document costs seconds per run, which is
what ``Store.runs()`` does. A summary has the shape of a results dict (``run_id``,
``started_at``, ``delta``, ``tests`` with fitness fields, no iterations), so the report
takes summaries and whole documents alike.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from pytest_rafael.store.core import Store

MAX_HISTORY_RUNS = 50  # the report draws at most this many runs
_TEST_FIELDS = (
    "nodeid",
    "scenario",
    "module",
    "severity",
    "success_rate",
    "baseline_fitness",
    "best_fitness",
)


def _run_rows(store: Store) -> list[dict[str, Any]]:
    """run_id, started_at and the delta (JSON text) of every run, oldest first."""
    # The whole stored document is parsed only for runs stored before the run_deltas
    # table existed (COALESCE evaluates it only where no delta row is found).
    stored = store.json_text_sql("r.results_json", "delta")
    try:
        return [
            {"run_id": r[0], "started_at": r[1], "delta": r[2]}
            for r in store.conn.execute(
                f"SELECT r.run_id, r.started_at, COALESCE(d.delta_json, {stored})"
                " FROM runs r LEFT JOIN run_deltas d ON d.run_id = r.run_id"
                " ORDER BY r.started_at, r.rowid"
            )
        ]
    except sqlite3.OperationalError:  # an SQLite built without JSON1: parse in Python
        return [
            {
                "run_id": r[0],
                "started_at": r[1],
                "delta": json.dumps(json.loads(r[2]).get("delta") or {}),
            }
            for r in store.conn.execute(
                "SELECT run_id, started_at, results_json FROM runs ORDER BY started_at, rowid"
            )
        ]


def _summaries(store: Store, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    tests: dict[str, list[dict[str, Any]]] = {r["run_id"]: [] for r in rows}
    if rows:
        for row in store.history():
            if row["run_id"] in tests:
                tests[row["run_id"]].append({k: row[k] for k in _TEST_FIELDS})
    return [
        {
            "run_id": r["run_id"],
            "started_at": r["started_at"],
            "delta": json.loads(r["delta"]) if r["delta"] else {},
            "tests": tests[r["run_id"]],
        }
        for r in rows
    ]


def history_from_store(store: Store, before: str | None = None) -> list[dict[str, Any]]:
    """Summaries of the stored runs before run ``before`` (all runs when it is None or not
    stored yet), oldest first, at most MAX_HISTORY_RUNS: the ``history`` argument of
    :func:`write_reports`."""
    rows = _run_rows(store)
    ids = [r["run_id"] for r in rows]
    end = max(n for n, i in enumerate(ids) if i == before) if before in ids else len(rows)
    return _summaries(store, rows[max(0, end - MAX_HISTORY_RUNS) : end])


def load_run(
    store: Store, run_id: str | None = None
) -> tuple[dict[str, Any] | None, list[dict[str, Any]], int]:
    """(the whole results document of ``run_id`` or the latest run, summaries of the runs
    before it, number of stored runs); the document is None when there is no such run."""
    text, history, count = load_run_text(store, run_id)
    return (None if text is None else json.loads(text)), history, count


def load_run_text(
    store: Store, run_id: str | None = None
) -> tuple[str | None, list[dict[str, Any]], int]:
    """:func:`load_run` with the document as stored (JSON text), not yet parsed."""
    rows = _run_rows(store)
    ids = [r["run_id"] for r in rows]
    if run_id is None:
        pick = len(ids) - 1
    else:
        pick = max((n for n, i in enumerate(ids) if i == run_id), default=-1)
    if pick < 0:
        return None, [], len(ids)
    doc = store.conn.execute(
        "SELECT results_json FROM runs WHERE run_id = ?", (ids[pick],)
    ).fetchone()
    return str(doc[0]), _summaries(store, rows[max(0, pick - MAX_HISTORY_RUNS) : pick]), len(ids)
