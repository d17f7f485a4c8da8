"""``rafael report [--store PATH|URL] [--out DIR] [--run RUN_ID | --run-group ID]``:
regenerate the report from the store without running tests; with ``--run-group``, one
merged report, gate and ``results.json`` for every shard of a CI run."""

from __future__ import annotations

import argparse
import json
import sqlite3
from pathlib import Path
from typing import Any

from pytest_rafael.cli import CommandError, add_setting, resolve_settings
from pytest_rafael.common.store_url import is_store_url
from pytest_rafael.report.history import history_from_store, load_run_text
from pytest_rafael.store.core import Store, StoreError, store_label


def register(sub: Any, group: argparse.ArgumentParser) -> None:
    # `rafael report` is a command by itself: arguments go on the group, no subcommands.
    add_setting(
        group, "store", "--store", help="the rafael store: an SQLite file or a postgresql:// URL"
    )
    add_setting(group, "report_dir", "--out", dest="out", help="folder for the report files")
    which = group.add_mutually_exclusive_group()
    which.add_argument(
        "--run",
        metavar="RUN_ID",
        default=None,
        help="report this stored run (default: the latest); earlier runs form its history",
    )
    which.add_argument(
        "--run-group",
        metavar="ID",
        default=None,
        help="merge every shard of this run group into one report and gate (exit 1 when "
        "the group's gate fails)",
    )
    group.set_defaults(func=run)


def _target(given: str) -> Path | str:
    if is_store_url(given):
        return given
    path = Path(given)
    # Store() would create an empty database: check first so a typo is an error.
    if not path.is_file():
        raise CommandError(
            f"{path}: no rafael store here (run pytest --rafael-chaos first, or pass --store PATH)"
        )
    return path


def _load(
    target: Path | str, args: argparse.Namespace
) -> tuple[dict[str, Any] | None, list[dict[str, Any]], int, str | None]:
    """(document, history, count, the document's results.json text when stored as such)."""
    from pytest_rafael.common.results_text import is_results_text
    from pytest_rafael.report.group import merge_group

    # Read-only: regenerating a report never writes to the store (which may be on a
    # read-only mount or a CI artefact).
    with Store(target, readonly=True) as store:
        if args.run_group is None:
            text, history, count = load_run_text(store, args.run)
            if text is None:
                return None, history, count, None
            return json.loads(text), history, count, text if is_results_text(text) else None
        shards = store.group_runs(args.run_group)
        if not shards:
            return None, [], len(store.runs(limit=1)), None
        history = history_from_store(store, before=str(shards[0]["run_id"]))
        return merge_group(args.run_group, shards), history, len(shards), None


def run(args: argparse.Namespace) -> int:
    resolve_settings(args)  # the option table's values for unset flags
    from pytest_rafael.report.writer import write_reports

    target = _target(str(args.store))
    label = store_label(target)
    try:
        current, history, count, text = _load(target, args)
    except StoreError as exc:
        raise CommandError(str(exc).splitlines()[0]) from None
    except (sqlite3.Error, ValueError, KeyError) as exc:  # a corrupt row: no traceback
        raise CommandError(f"{label}: cannot read stored runs: {exc}") from None
    if count == 0 and args.run_group is None:
        raise CommandError(f"{label}: the store has no runs yet", exit_code=1)
    if current is None:
        if args.run_group is not None:
            raise CommandError(f"{label}: no runs in run group {args.run_group!r}", exit_code=1)
        raise CommandError(f"{label}: no run with id {args.run!r} ({count} runs stored)")
    try:
        paths = write_reports(current, args.out, history, results_text=text)
    except OSError as exc:
        raise CommandError(f"{args.out}: cannot write the report: {exc}", exit_code=1) from None
    if args.run_group is None:
        print(
            f"rafael report: wrote {paths.index_html} ({len(history) + 1} runs) for run "
            f"{current.get('run_id')}"
        )
        return 0
    gate = current["gate"]
    print(
        f"rafael report: wrote {paths.index_html} for run group {args.run_group} "
        f"({count} shards, {len(current['tests'])} tests): gate "
        f"{'passed' if gate['passed'] else 'FAILED'}"
    )
    for line in gate["failures"] or ([current["error"]] if "error" in current else []):
        print(f"  {line}")
    return 0 if gate["passed"] else 1
