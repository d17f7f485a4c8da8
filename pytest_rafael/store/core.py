"""The rafael store: runs and their results (this module), plus the tables other parts
use (evolution state, proposals, audit chain, vault evidence). The schema is versioned:
:mod:`pytest_rafael.store.schema` upgrades an older store in place when it is opened.

``Store(target)`` is the one store interface. ``target`` is an SQLite file (the embedded
default) or a ``postgresql://`` URL, which gives the PostgreSQL backend of
:mod:`pytest_rafael.store.postgres` (a subclass: the same methods, the same SQL through a
translating connection), for a store shared by many CI runners and reviewers.

One writer per run: under pytest-xdist only the controller opens the store for writing.
Several processes (two CI jobs on one runner, a `rafael genome approve` during a run) may
still write at once, so every write goes through ``BEGIN IMMEDIATE`` with a busy timeout,
and the file is created owner-only because the audit chain lives here.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pytest_rafael.common.results_text import results_json_text
from pytest_rafael.common.store_url import is_store_url
from pytest_rafael.errors import RafaelError
from pytest_rafael.store.schema import migrate

RUNS_SCHEMA = """
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


class StoreError(RafaelError):
    """The store cannot be opened or is not a rafael store; the message names the file."""


class StoreDatabaseError(StoreError):
    """A database error while using the store (the connection was lost, a statement was
    refused); the message is one line naming the store."""


def redacted(url: str) -> str:
    """``url`` without its password, for messages."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}@{parts.hostname or ''}" if parts.username else parts.hostname
    if parts.port:
        netloc = f"{netloc}:{parts.port}"
    return urlunsplit((parts.scheme, netloc or "", parts.path, parts.query, parts.fragment))


def store_label(target: str | os.PathLike[str]) -> str:
    """How messages name a store: its file, or its URL without the password."""
    return redacted(target) if isinstance(target, str) and is_store_url(target) else str(target)


def table_columns(conn: Any, table: str) -> set[str]:
    """The column names of ``table`` on either backend's connection."""
    if isinstance(conn, sqlite3.Connection):
        return {str(r[1]) for r in conn.execute(f"PRAGMA table_info({table})")}
    return set(conn.columns(table))


# PRAGMA application_id of a rafael store ("RAFL"): a store is recognised as ours by it
# (or, for stores made before it was set, by the ``runs`` table).
APPLICATION_ID = 0x5241464C
_RAFAEL_TABLE = "runs"


class Store:
    """A connection to the rafael store at ``path`` (created on first use): an SQLite file,
    or a ``postgresql://`` URL (see the module docstring).

    ``readonly``: open an existing store without ever writing to it (``rafael audit
    verify``, ``rafael report``, ``rafael genome proposals`` work on a read-only file or
    mount). Tables a read-only store lacks are stood in for by empty temporary ones.

    An SQLite file that is not a rafael store is refused before anything is written to
    it (its journal mode, header and tables stay as they were)."""

    backend = "sqlite"
    _snapshot_depth = 0  # how many snapshot() blocks are open (see snapshot)

    def __new__(cls, path: str | os.PathLike[str], *, readonly: bool = False) -> Store:
        if cls is Store and is_store_url(path):
            from pytest_rafael.store.postgres import PgStore

            return super().__new__(PgStore)
        return super().__new__(cls)

    def __init__(self, path: str | os.PathLike[str], *, readonly: bool = False) -> None:
        self.path = Path(path)
        self.location = str(self.path)
        self.readonly = readonly
        try:
            if readonly:
                self.conn = self._connect_readonly()
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                # Create the file ourselves so that it is owner-only from its first byte;
                # SQLite gives its -wal and -shm files the same mode.
                # An existing file keeps its mode: the HIPAA control reports a lax one
                # rather than having it silently tightened.
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
                os.close(fd)
                self.conn = sqlite3.connect(
                    self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None
                )
            self.conn.row_factory = sqlite3.Row
            self.conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            self._check_ours()
            if not readonly:
                self.conn.execute("PRAGMA journal_mode = WAL")
                # FULL: a commit survives power loss, which the audit chain promises.
                self.conn.execute("PRAGMA synchronous = FULL")
                if self.conn.execute("PRAGMA application_id").fetchone()[0] != APPLICATION_ID:
                    self.conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            migrate(self)
        except StoreError:
            self._close_quietly()
            raise
        except (OSError, sqlite3.DatabaseError) as exc:
            self._close_quietly()
            raise StoreError(f"{self.path}: cannot open the rafael store: {exc}") from None

    def _connect_readonly(self) -> sqlite3.Connection:
        if not self.path.is_file():
            raise StoreError(f"{self.path}: no rafael store here")
        uri = self.path.resolve().as_uri()
        conn = sqlite3.connect(
            f"{uri}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None
        )
        try:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            return conn
        except sqlite3.OperationalError:
            # A WAL database in a folder we cannot write to (no -shm can be created):
            # nobody can be writing it through this folder either, so read it as is.
            conn.close()
        conn = sqlite3.connect(
            f"{uri}?mode=ro&immutable=1",
            uri=True,
            timeout=BUSY_TIMEOUT_MS / 1000,
            isolation_level=None,
        )
        return conn

    def _check_ours(self) -> None:
        """Refuse an SQLite file that belongs to something else, before writing to it."""
        app_id = self.conn.execute("PRAGMA application_id").fetchone()[0]
        tables = {
            str(r[0])
            for r in self.conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        }
        if app_id == APPLICATION_ID:
            return
        if app_id == 0:
            if not tables:
                return  # a new (empty) database
            if _RAFAEL_TABLE in tables:
                columns = {
                    str(r[1]) for r in self.conn.execute(f"PRAGMA table_info({_RAFAEL_TABLE})")
                }
                if {"run_id", "results_json"} <= columns:
                    return  # a store made before application_id was set
        shown = ", ".join(sorted(tables)[:5]) or "none"
        raise StoreError(
            f"{self.path}: an SQLite database that is not a rafael store "
            f"(application id {app_id:#x}, tables: {shown}); refusing to use or change it"
        )

    def _close_quietly(self) -> None:
        conn = getattr(self, "conn", None)
        if conn is not None:
            with contextlib.suppress(sqlite3.Error):
                conn.close()

    def ensure_schema(self, ddl: str) -> None:
        """Create tables and indexes (``IF NOT EXISTS`` statements) in one transaction.

        On a read-only store nothing is written: a missing table is created as an empty
        TEMP table (private to this connection), so readers see "no rows"."""
        if self.readonly:
            for statement in ddl.split(";"):
                text = statement.strip()
                prefix = "CREATE TABLE IF NOT EXISTS "
                if not text.startswith(prefix):
                    continue
                name = text[len(prefix) :].split("(", 1)[0].strip()
                found = self.conn.execute(
                    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
                ).fetchone()
                if found is None:
                    self.conn.execute("CREATE TEMP TABLE IF NOT EXISTS " + text[len(prefix) :])
            return
        with self.transaction():
            for statement in ddl.split(";"):
                if statement.strip():
                    self.conn.execute(statement)

    def has_column(self, table: str, column: str) -> bool:
        return column in table_columns(self.conn, table)

    def lock(self, conn: Any, name: str | None = None) -> None:
        """Serialize writers inside a transaction: on the store's one write lock, or on
        the lock of ``name`` alone (one evolution key, say). SQLite's ``BEGIN IMMEDIATE``
        already holds its one write lock; the PostgreSQL backend takes advisory locks."""

    def sequence_sql(self, table: str) -> str:
        """A scalar subquery giving the AUTOINCREMENT counter of ``table`` (NULL if none)."""
        return f"(SELECT seq FROM sqlite_sequence WHERE name = '{table}')"

    def json_text_sql(self, column: str, key: str) -> str:
        """An expression giving the JSON text of ``column``'s top-level ``key``."""
        return f"json_extract({column}, '$.{key}')"

    def add_column(self, table: str, column: str, decl: str) -> None:
        """Add a column to a table made by an older version (no-op when present, and on a
        read-only store, whose readers must cope with its absence)."""
        if self.readonly or self.has_column(table, column):
            return
        with self.transaction() as conn:
            if not self.has_column(table, column):
                conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {decl}")

    @contextmanager
    def transaction(self, lock: bool = True) -> Iterator[sqlite3.Connection]:
        """A write transaction that takes the write lock up front (``BEGIN IMMEDIATE``),
        so concurrent writers queue instead of failing half-way. ``lock=False``: writes
        that are safe side by side (upserts of distinct rows) need not queue behind the
        store's write lock on a backend that has row locks (PostgreSQL); SQLite has
        only the one lock."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        else:
            self.conn.execute("COMMIT")

    @contextmanager
    def snapshot(self) -> Iterator[sqlite3.Connection]:
        """Reads that all see one committed state: a check that reads two tables (the
        proposals, then the log that must name each of them) must not see a concurrent
        writer's commit land between its reads. Re-entrant: an inner snapshot joins the
        outer one."""
        if self._snapshot_depth:
            self._snapshot_depth += 1
            try:
                yield self.conn
            finally:
                self._snapshot_depth -= 1
            return
        # SQLite: a deferred transaction reads one WAL snapshot; PostgreSQL: the
        # connection turns a bare BEGIN into REPEATABLE READ.
        self.conn.execute("BEGIN")
        self._snapshot_depth = 1
        try:
            yield self.conn
        finally:
            self._snapshot_depth = 0
            self.conn.execute("COMMIT")

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- runs -------------------------------------------------------------------------

    def save_run(self, results: dict[str, Any], run_group: str | None = None) -> None:
        """Store one run's ``results.json`` document and its per-test summary rows;
        ``run_group`` ties the shards of one CI run together (``rafael report
        --run-group``)."""
        group = run_group if run_group is not None else results.get("run_group")
        # Row upserts of this run only: runners on other machines need not queue.
        with self.transaction(lock=False) as conn:
            conn.execute(
                "INSERT INTO runs (run_id, started_at, finished_at, seed, chaos, actor,"
                " results_json, run_group) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (run_id) DO UPDATE SET started_at = excluded.started_at,"
                " finished_at = excluded.finished_at, seed = excluded.seed,"
                " chaos = excluded.chaos, actor = excluded.actor,"
                " results_json = excluded.results_json, run_group = excluded.run_group",
                (
                    results["run_id"],
                    results["started_at"],
                    results["finished_at"],
                    results["seed"],
                    int(results["chaos"]),
                    results["actor"],
                    # In results.json's own form: `rafael report` writes it back as is.
                    results_json_text(results),
                    group,
                ),
            )
            # The delta in a small table of its own: the report's history reads it without
            # parsing, or even paging through, each stored document (see report/history.py).
            conn.execute(
                "INSERT INTO run_deltas (run_id, delta_json) VALUES (?, ?)"
                " ON CONFLICT (run_id) DO UPDATE SET delta_json = excluded.delta_json",
                (results["run_id"], json.dumps(results.get("delta") or {}, default=str)),
            )
            conn.executemany(
                "INSERT INTO test_results (run_id, nodeid, scenario, module, severity,"
                " success_rate, baseline_fitness, best_fitness, adopted, proposal_id)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (run_id, nodeid, scenario) DO UPDATE SET"
                " module = excluded.module, severity = excluded.severity,"
                " success_rate = excluded.success_rate,"
                " baseline_fitness = excluded.baseline_fitness,"
                " best_fitness = excluded.best_fitness, adopted = excluded.adopted,"
                " proposal_id = excluded.proposal_id",
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

    def group_runs(self, run_group: str) -> list[dict[str, Any]]:
        """The ``results.json`` documents of every shard of ``run_group``, oldest first."""
        if not self.has_column("runs", "run_group"):
            return []  # a read-only store from before run groups
        rows = self.conn.execute(
            "SELECT results_json FROM runs WHERE run_group = ? ORDER BY started_at, run_id",
            (run_group,),
        ).fetchall()
        return [json.loads(r[0]) for r in rows]

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
