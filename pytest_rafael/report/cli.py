"""``rafael report [--store PATH] [--out DIR] [--run RUN_ID]``: regenerate the report
from the store without running tests."""

from __future__ import annotations

import argparse
import sqlite3
from pathlib import Path
from typing import Any

from pytest_rafael.cli import CommandError, add_setting, resolve_settings
from pytest_rafael.report.history import load_run
from pytest_rafael.store import Store, StoreError


def register(sub: Any, group: argparse.ArgumentParser) -> None:
    # `rafael report` is a command by itself: arguments go on the group, no subcommands.
    add_setting(group, "store", "--store", help="the rafael SQLite store")
    add_setting(group, "report_dir", "--out", dest="out", help="folder for the report files")
    group.add_argument(
        "--run",
        metavar="RUN_ID",
        default=None,
        help="report this stored run (default: the latest); earlier runs form its history",
    )
    group.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    resolve_settings(args)  # the option table's values for unset flags
    from pytest_rafael.report.writer import write_reports

    store_path: Path = args.store
    # Store() would create an empty database: check first so a typo is an error.
    if not store_path.is_file():
        raise CommandError(
            f"{store_path}: no rafael store here (run pytest --rafael-chaos "
            "first, or pass --store PATH)"
        )
    try:
        # Read-only: regenerating a report never writes to the store (which may be on a
        # read-only mount or a CI artefact).
        with Store(store_path, readonly=True) as store:
            current, history, count = load_run(store, args.run)
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
