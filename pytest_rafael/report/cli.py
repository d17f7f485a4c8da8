"""``rafael report [--store PATH] [--out DIR] [--run RUN_ID]``: regenerate the report
from the store without running tests."""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
from pathlib import Path
from typing import Any

from pytest_rafael.cli import CommandError
from pytest_rafael.store import Store, StoreError


def register(sub: Any, group: argparse.ArgumentParser) -> None:
    # `rafael report` is a command by itself: arguments go on the group, no subcommands.
    group.add_argument(
        "--store",
        type=Path,
        default=Path(os.environ.get("RAFAEL_STORE", ".rafael/rafael.db")),
        help="the rafael SQLite store (default: $RAFAEL_STORE or .rafael/rafael.db)",
    )
    group.add_argument(
        "--out",
        type=Path,
        default=Path(os.environ.get("RAFAEL_REPORT_DIR", "reports")),
        help="folder for the report files (default: $RAFAEL_REPORT_DIR or reports)",
    )
    group.add_argument(
        "--run",
        metavar="RUN_ID",
        default=None,
        help="report this stored run (default: the latest); earlier runs form its history",
    )
    group.set_defaults(func=run)


def _load(
    store: Store, run_id: str | None
) -> tuple[dict[str, Any] | None, list[dict[str, Any]], int]:
    """The run to report (whole results document) and the runs before it, oldest first.

    Earlier runs are read as summaries (their delta and per-test rows), not whole documents:
    the history charts need nothing more, and parsing every stored 10,000-iteration
    document would dominate the command's time.
    """
    # Imported here: `rafael --help` imports every group's module; keep jinja2 out of it.
    from pytest_rafael.report.html import MAX_HISTORY_RUNS

    try:
        rows = store.conn.execute(
            "SELECT run_id, started_at, json_extract(results_json, '$.delta') AS delta"
            " FROM runs ORDER BY started_at, rowid"
        ).fetchall()
    except sqlite3.OperationalError:  # an SQLite built without JSON1: parse in Python
        rows = [
            {
                "run_id": r[0],
                "started_at": r[1],
                "delta": json.dumps(json.loads(r[2]).get("delta") or {}),
            }
            for r in store.conn.execute(
                "SELECT run_id, started_at, results_json FROM runs ORDER BY started_at, rowid"
            )
        ]
    ids = [r["run_id"] for r in rows]
    if not ids:
        return None, [], 0
    pick = (
        len(ids) - 1
        if run_id is None
        else (max(n for n, i in enumerate(ids) if i == run_id) if run_id in ids else -1)
    )
    if pick < 0:
        return None, [], len(ids)
    doc = store.conn.execute(
        "SELECT results_json FROM runs WHERE run_id = ?", (ids[pick],)
    ).fetchone()
    current: dict[str, Any] = json.loads(doc[0])
    earlier = rows[max(0, pick - MAX_HISTORY_RUNS) : pick]
    tests: dict[str, list[dict[str, Any]]] = {r["run_id"]: [] for r in earlier}
    if earlier:
        for row in store.history():
            if row["run_id"] in tests:
                tests[row["run_id"]].append(
                    {
                        k: row[k]
                        for k in (
                            "nodeid",
                            "scenario",
                            "module",
                            "severity",
                            "success_rate",
                            "baseline_fitness",
                            "best_fitness",
                        )
                    }
                )
    history = [
        {
            "run_id": r["run_id"],
            "started_at": r["started_at"],
            "delta": json.loads(r["delta"]) if r["delta"] else {},
            "tests": tests[r["run_id"]],
        }
        for r in earlier
    ]
    return current, history, len(ids)


def run(args: argparse.Namespace) -> int:
    from pytest_rafael.report.writer import write_reports

    store_path: Path = args.store
    # Store() would create an empty database: check first so a typo is an error.
    if not store_path.is_file():
        raise CommandError(
            f"{store_path}: no rafael store here (run pytest --rafael-chaos "
            "first, or pass --store PATH)"
        )
    try:
        with Store(store_path) as store:
            current, history, count = _load(store, args.run)
    except StoreError as exc:
        raise CommandError(str(exc)) from None
    except (sqlite3.Error, ValueError, KeyError) as exc:  # a corrupt row: no traceback
        raise CommandError(f"{store_path}: cannot read stored runs: {exc}") from None
    if count == 0:
        raise CommandError(f"{store_path}: the store has no runs yet", exit_code=1)
    if current is None:
        raise CommandError(f"{store_path}: no run with id {args.run!r} ({count} runs stored)")
    try:
        paths = write_reports(current, args.out, history)
    except OSError as exc:
        raise CommandError(f"{args.out}: cannot write the report: {exc}", exit_code=1) from None
    print(
        f"rafael report: wrote {paths.index_html} ({len(history) + 1} runs) for run "
        f"{current.get('run_id')}"
    )
    return 0
