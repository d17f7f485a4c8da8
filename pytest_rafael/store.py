"""The SQLite store: runs and their results (this module), plus the tables other parts
add through :meth:`Store.ensure_schema` (evolution state, proposals, audit chain, vault
evidence).

One writer per run: under pytest-xdist only the controller opens the store for writing.
Several processes (two CI jobs on one runner, a `rafael genome approve` during a run) may
still write at once, so every write goes through ``BEGIN IMMEDIATE`` with a busy timeout,
and the file is created owner-only because the audit chain lives here.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

_RUNS_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id       TEXT PRIMARY KEY,
    started_at   TEXT NOT NULL,
    finished_at  TEXT NOT NULL,
    seed         INTEGER NOT NULL,
    chaos        INTEGER NOT NULL,
    actor        TEXT NOT NULL,
    results_json TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS test_results (
    run_id           TEXT NOT NULL REFERENCES runs(run_id),
    nodeid           TEXT NOT NULL,
    scenario         TEXT NOT NULL,
    module           TEXT,
    severity         TEXT NOT NULL,
    success_rate     REAL NOT NULL,
    baseline_fitness REAL,
    best_fitness     REAL,
    adopted          INTEGER NOT NULL,
    proposal_id      TEXT,
    PRIMARY KEY (run_id, nodeid, scenario)
);
"""

BUSY_TIMEOUT_MS = 30_000


class StoreError(Exception):
    """The store cannot be opened or is not a rafael store; the message names the file."""


class Store:
    """A connection to the rafael SQLite store at ``path`` (created on first use)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # Create the file ourselves so that it is owner-only from its first byte;
            # SQLite gives its -wal and -shm files the same mode.
            # An existing file keeps its mode: the HIPAA control reports a lax one rather
            # than having it silently tightened.
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            os.close(fd)
            self.conn = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None
            )
            self.conn.row_factory = sqlite3.Row
            self.conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            self.conn.execute("PRAGMA journal_mode = WAL")
            # FULL: a commit survives power loss, which the audit chain promises.
            self.conn.execute("PRAGMA synchronous = FULL")
            self.ensure_schema(_RUNS_SCHEMA)
        except (OSError, sqlite3.DatabaseError) as exc:
            raise StoreError(f"{self.path}: cannot open the rafael store: {exc}") from None

    def ensure_schema(self, ddl: str) -> None:
        """Create tables and indexes (``IF NOT EXISTS`` statements) in one transaction."""
        with self.transaction():
            for statement in ddl.split(";"):
                if statement.strip():
                    self.conn.execute(statement)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction that takes the write lock up front (``BEGIN IMMEDIATE``),
        so concurrent writers queue instead of failing half-way."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        else:
            self.conn.execute("COMMIT")

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- runs -------------------------------------------------------------------------

    def save_run(self, results: dict[str, Any]) -> None:
        """Store one run's ``results.json`` document and its per-test summary rows."""
        with self.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    results["run_id"],
                    results["started_at"],
                    results["finished_at"],
                    results["seed"],
                    int(results["chaos"]),
                    results["actor"],
                    json.dumps(results, default=str),
                ),
            )
            conn.executemany(
                "INSERT OR REPLACE INTO test_results VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        results["run_id"],
                        t["nodeid"],
                        t["scenario"],
                        t["module"],
                        t["severity"],
                        t["success_rate"],
                        t["baseline_fitness"],
                        t["best_fitness"],
                        int(t["adopted"]),
                        t["proposal_id"],
                    )
                    for t in results["tests"]
                ],
            )

    def runs(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Stored ``results.json`` documents, oldest first (the last ``limit`` if given)."""
        rows = self.conn.execute(
            "SELECT results_json FROM runs ORDER BY started_at DESC, rowid DESC"
            + (" LIMIT ?" if limit else ""),
            (limit,) if limit else (),
        ).fetchall()
        return [json.loads(r[0]) for r in reversed(rows)]

    def history(self) -> list[sqlite3.Row]:
        """Per-test rows of every run, oldest run first: the report's trend lines."""
        return self.conn.execute(
            "SELECT r.started_at, t.* FROM test_results t JOIN runs r USING (run_id)"
            " ORDER BY r.started_at, r.rowid"
        ).fetchall()
