"""The PostgreSQL backend of the rafael store (``--rafael-store postgresql://...``),
through psycopg 3 (``pip install 'pytest-rafael[postgres]'``).

It is :class:`~pytest_rafael.store.core.Store` with another connection: the rest of the
package writes one SQL dialect (``?`` placeholders, ``ON CONFLICT`` upserts, ``rowid``
ordering) and :class:`PgConnection` runs it on PostgreSQL, returning rows that read by
position and by name like ``sqlite3.Row``.

Writers that read before they write are serialized like SQLite's: such a transaction
first takes one transaction-scoped advisory lock, so concurrent runners on many machines
queue instead of interleaving. That is what keeps the audit chain one chain (each append
reads the tail and inserts after it under the lock) and one pending proposal per module.
A run's own rows (``save_run``) are upserts that go side by side, and the evolution state
of one (test, scenario) key takes its own advisory lock to be merged rather than
overwritten (see :mod:`pytest_rafael.genome.state`).

Any database error (a lost connection above all) becomes one
:class:`~pytest_rafael.store.core.StoreDatabaseError` line naming the store, with the
password left out.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from functools import lru_cache
from pathlib import Path
from typing import Any

from pytest_rafael.store.core import Store, StoreDatabaseError, StoreError, redacted
from pytest_rafael.store.schema import migrate

# pg_advisory_xact_lock key of the store's one write lock ("RAFL").
WRITE_LOCK = 0x5241464C
CONNECT_TIMEOUT_S = 10


@lru_cache(maxsize=512)
def translate(sql: str) -> str:
    """``?`` placeholders become ``%s`` and a literal ``%`` becomes ``%%``, outside
    quoted strings (psycopg's format is ``%s``)."""
    out: list[str] = []
    quote: str | None = None
    for ch in sql:
        if quote:
            if ch == quote:
                quote = None
            out.append("%%" if ch == "%" else ch)
        elif ch in ("'", '"'):
            quote = ch
            out.append(ch)
        elif ch == "?":
            out.append("%s")
        elif ch == "%":
            out.append("%%")
        else:
            out.append(ch)
    return "".join(out)


class Row(tuple[Any, ...]):
    """A result row that reads by position and by column name, like ``sqlite3.Row``."""

    _names: dict[str, int]

    def __new__(cls, names: dict[str, int], values: Sequence[Any]) -> Row:
        row = super().__new__(cls, values)
        row._names = names
        return row

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return tuple.__getitem__(self, self._names[key])
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._names)


def _row_factory(cursor: Any) -> Any:
    names = {c.name: n for n, c in enumerate(cursor.description or ())}
    return lambda values: Row(names, values)


class PgCursor:
    """What the store's callers use of an ``sqlite3.Cursor``."""

    def __init__(self, owner: PgConnection, named: bool = True) -> None:
        self.owner = owner
        self.row_factory: Any = _row_factory if named else None
        self._cur: Any = None

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> PgCursor:
        from psycopg.rows import tuple_row

        factory = self.row_factory or tuple_row
        self._cur = self.owner.run(lambda raw: raw.cursor(row_factory=factory), sql, params)
        return self

    def fetchone(self) -> Any:
        return self.owner.guard(self._cur.fetchone)

    def fetchall(self) -> list[Any]:
        return list(self.owner.guard(self._cur.fetchall))

    def __iter__(self) -> Iterator[Any]:
        return iter(self.fetchall())


class PgConnection:
    """A psycopg connection in autocommit mode that takes the store's SQL: transactions
    are the statements the store sends (``BEGIN``, ``SAVEPOINT``, ``COMMIT``)."""

    def __init__(self, raw: Any, location: str) -> None:
        self.raw = raw
        self.location = location
        self.text_factory: Any = str  # set by SQLite-minded readers; meaningless here

    def guard(self, call: Any) -> Any:
        import psycopg

        try:
            return call()
        except psycopg.Error as exc:
            text = " ".join(str(exc).split()) or type(exc).__name__
            raise StoreDatabaseError(f"{self.location}: {text}") from None

    def run(self, make_cursor: Any, sql: str, params: Sequence[Any] | None) -> Any:
        if sql.strip().upper() in ("BEGIN", "BEGIN IMMEDIATE"):
            # A reader's BEGIN wants one snapshot; writers serialize on the lock.
            sql = "BEGIN ISOLATION LEVEL REPEATABLE READ" if sql.strip() == "BEGIN" else "BEGIN"
        text = translate(sql) if params is not None else sql

        def call() -> Any:
            cur = make_cursor(self.raw)
            cur.execute(text, params)
            return cur

        return self.guard(call)

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> PgCursor:
        return PgCursor(self).execute(sql, tuple(params) if params is not None else None)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        rows = list(rows)
        if rows:
            self.guard(lambda: self.raw.cursor().executemany(translate(sql), rows))

    def cursor(self) -> PgCursor:
        return PgCursor(self)

    def columns(self, table: str) -> list[str]:
        rows = self.execute(
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND table_name = ?",
            (table,),
        ).fetchall()
        return [str(r[0]) for r in rows]

    def close(self) -> None:
        with suppress(Exception):
            self.raw.close()


class PgStore(Store):
    """The store in a PostgreSQL database (see the module docstring)."""

    backend = "postgresql"

    def __init__(self, path: str | os.PathLike[str], *, readonly: bool = False) -> None:
        url = str(path)
        self.url = url
        self.location = redacted(url)
        # Nothing on disk: file checks (permissions, -wal files) find nothing here.
        self.path = Path("/nonexistent-postgresql-store")
        self.readonly = readonly
        try:
            import psycopg
        except ImportError:
            raise StoreError(
                f"{self.location}: a PostgreSQL store needs psycopg 3: "
                "pip install 'pytest-rafael[postgres]'"
            ) from None
        try:
            raw = psycopg.connect(
                url,
                autocommit=True,
                connect_timeout=CONNECT_TIMEOUT_S,
                application_name="pytest-rafael",
                options="-c default_transaction_read_only=on" if readonly else None,
            )
        except psycopg.Error as exc:
            text = " ".join(str(exc).split())
            raise StoreError(f"{self.location}: cannot open the rafael store: {text}") from None
        self.conn = PgConnection(raw, self.location)  # type: ignore[assignment]
        self._holding = False  # the write lock is held by the open transaction
        try:
            migrate(self)
        except StoreError:
            self.conn.close()
            raise

    def ensure_schema(self, ddl: str) -> None:
        # The migrations own the PostgreSQL schema (a CI role may hold no CREATE right).
        return None

    def add_column(self, table: str, column: str, decl: str) -> None:
        return None

    def lock(self, conn: Any, name: str | None = None) -> None:
        if name is None:
            if self._holding:
                return  # held until this transaction ends: no second round trip
            conn.execute(f"SELECT pg_advisory_xact_lock({WRITE_LOCK})")
            self._holding = True
        else:  # the (int, int) key space: never the write lock's
            conn.execute(f"SELECT pg_advisory_xact_lock({WRITE_LOCK}, hashtext(?))", (name,))

    def sequence_sql(self, table: str) -> str:
        return "NULL"

    def json_text_sql(self, column: str, key: str) -> str:
        return f"(({column})::jsonb -> '{key}')::text"

    @contextmanager
    def transaction(self, lock: bool = True) -> Iterator[Any]:
        """A write transaction holding the store's write lock from its first statement
        (``lock=False``: only the row locks its statements take)."""
        conn = self.conn
        try:
            if lock:
                # One round trip for both: the lock is what writers queue on.
                conn.execute(f"BEGIN; SELECT pg_advisory_xact_lock({WRITE_LOCK})")
                self._holding = True
            else:
                conn.execute("BEGIN IMMEDIATE")
            yield conn
        except BaseException:
            self._holding = False
            with suppress(StoreError):
                conn.execute("ROLLBACK")
            raise
        else:
            self._holding = False
            conn.execute("COMMIT")

    def close(self) -> None:
        self.conn.close()
