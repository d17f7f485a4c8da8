"""The tamper-evident audit log: an append-only, hash-chained table in the rafael store.

Each entry's ``hash`` is SHA-256 over the canonical JSON of ``[id, timestamp,
event_type, actor, module, change_id, details, prev_hash]``: the id is the sequence
number (1, 2, 3, ...) and ``prev_hash`` the previous entry's hash, so editing a field,
deleting, inserting or reordering rows all break the chain at a definite entry.

Deleting the *last* entries leaves a shorter chain that is still internally consistent,
so the tail is also recorded in a one-row ``audit_head`` table (written in the same
transaction as each append) and cross-checked with SQLite's AUTOINCREMENT counter,
which never goes backwards.

Someone who knows this scheme could recompute every hash after an edit. With
``RAFAEL_AUDIT_KEY`` set, each entry also carries ``mac`` = HMAC-SHA256(key, hash), and
the head is MAC'd too; without the key such a rewrite cannot be made to verify.

Appends run inside ``BEGIN IMMEDIATE`` (on PostgreSQL: a transaction holding the store's
advisory write lock) and read the tail inside that transaction, so any number of
processes, on any number of machines for a shared PostgreSQL store, can append at once
and the chain stays one chain; a process killed mid-append, or a connection lost, leaves
the previous committed state (the transaction is atomic). On PostgreSQL a trigger also
refuses UPDATE, DELETE and TRUNCATE on audit rows.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from json.encoder import encode_basestring
from typing import Any

from pytest_rafael.errors import RafaelError
from pytest_rafael.guardian.audit_hash import (
    GENESIS_HASH,
    _mac,
    canonical_json,
    entry_hash,
    jsonable,
)
from pytest_rafael.store.core import Store

KEY_ENV = "RAFAEL_AUDIT_KEY"

SCHEMA = """
CREATE TABLE IF NOT EXISTS audit (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    timestamp   TEXT NOT NULL,
    event_type  TEXT NOT NULL,
    actor       TEXT NOT NULL,
    module      TEXT,
    change_id   TEXT,
    details     TEXT NOT NULL,
    prev_hash   TEXT NOT NULL,
    hash        TEXT NOT NULL,
    mac         TEXT
);
CREATE INDEX IF NOT EXISTS audit_change ON audit (change_id);
CREATE TABLE IF NOT EXISTS audit_head (
    singleton   INTEGER PRIMARY KEY CHECK (singleton = 1),
    last_id     INTEGER NOT NULL,
    last_hash   TEXT NOT NULL,
    mac         TEXT
);
"""

_COLUMNS = "id, timestamp, event_type, actor, module, change_id, details, prev_hash, hash, mac"


def audit_key_from_env(env: Mapping[str, str] | None = None) -> bytes | None:
    value = (os.environ if env is None else env).get(KEY_ENV, "")
    try:
        return value.encode("utf-8") if value else None
    except UnicodeEncodeError:  # bytes that are not UTF-8 in the environment
        raise AuditChainError(
            f"environment variable {KEY_ENV}: not UTF-8 text; set the key as text"
        ) from None


@dataclass(frozen=True)
class AuditEntry:
    id: int
    timestamp: str
    event_type: str
    actor: str
    module: str | None
    change_id: str | None
    details: Mapping[str, Any]
    prev_hash: str
    hash: str
    mac: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "timestamp": self.timestamp,
            "event_type": self.event_type,
            "actor": self.actor,
            "module": self.module,
            "change_id": self.change_id,
            "details": dict(self.details),
            "prev_hash": self.prev_hash,
            "hash": self.hash,
            "mac": self.mac,
        }


@dataclass(frozen=True)
class NewEntry:
    """An entry to append; the log assigns id, timestamp and hashes."""

    event_type: str
    actor: str
    module: str | None = None
    change_id: str | None = None
    details: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    entries: int
    first_broken: int | None = None
    reason: str | None = None
    hmac_checked: bool = False
    # Entries carrying a MAC that could not be checked because no key was given.
    unchecked_macs: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "verified": self.ok,
            "entries": self.entries,
            "first_broken": self.first_broken,
            "reason": self.reason,
            "hmac": self.hmac_checked,
        }


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


class AuditLog:
    """The audit chain of one store. ``key``: the HMAC key (``RAFAEL_AUDIT_KEY``)."""

    def __init__(self, store: Store, key: bytes | None = None) -> None:
        self.store = store
        self.key = key
        store.ensure_schema(SCHEMA)

    # -- writing ---------------------------------------------------------------------

    def append(
        self,
        event_type: str,
        actor: str,
        module: str | None = None,
        change_id: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> AuditEntry:
        """Append one entry in its own durable transaction."""
        with self.store.transaction() as conn:
            new = NewEntry(event_type, actor, module, change_id, details)
            return self.append_in(conn, [new])[0]

    def append_many(self, entries: Iterable[NewEntry]) -> list[AuditEntry]:
        """Append several entries in one transaction (one fsync for all of them)."""
        batch = list(entries)
        if not batch:
            return []
        with self.store.transaction() as conn:
            return self.append_in(conn, batch)

    def append_in(self, conn: sqlite3.Connection, entries: list[NewEntry]) -> list[AuditEntry]:
        """Append inside a write transaction the caller holds (``store.transaction()``),
        so a state change and its audit entries commit together or not at all."""
        last_id, prev = self._checked_tail(conn)
        out: list[AuditEntry] = []
        rows = []
        timestamp = _now()
        for new in entries:
            last_id += 1
            entry, details_text = self._new_entry(last_id, timestamp, new, prev)
            rows.append(
                (
                    entry.id,
                    entry.timestamp,
                    entry.event_type,
                    entry.actor,
                    entry.module,
                    entry.change_id,
                    details_text,
                    entry.prev_hash,
                    entry.hash,
                    entry.mac,
                )
            )
            out.append(entry)
            prev = entry.hash
        conn.executemany(f"INSERT INTO audit ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?)", rows)
        head_mac = _mac(self.key, f"{last_id}:{prev}") if self.key else None
        conn.execute(
            "INSERT INTO audit_head (singleton, last_id, last_hash, mac) VALUES (1, ?, ?, ?)"
            " ON CONFLICT (singleton) DO UPDATE SET last_id = excluded.last_id,"
            " last_hash = excluded.last_hash, mac = excluded.mac",
            (last_id, prev, head_mac),
        )
        return out

    def _checked_tail(self, conn: sqlite3.Connection) -> tuple[int, str]:
        """The last entry's id and hash, once the head, the signature and the entry
        counter agree with them."""
        # Read the tail inside the transaction, holding the write lock (BEGIN IMMEDIATE;
        # on PostgreSQL the advisory lock, taken again here in case the caller's
        # transaction did not): no other process can append between this read and our
        # insert, so the chain stays one chain.
        self.store.lock(conn)
        # One statement for the three things that must agree: the last row, the head
        # record and SQLite's AUTOINCREMENT counter (fewer round trips per append).
        head_id, head_hash, head_mac, tail_id, tail_hash, seq = conn.execute(
            "SELECT (SELECT last_id FROM audit_head), (SELECT last_hash FROM audit_head),"
            " (SELECT mac FROM audit_head),"
            " (SELECT max(id) FROM audit), (SELECT hash FROM audit ORDER BY id DESC LIMIT 1),"
            f" {self.store.sequence_sql('audit')}"
        ).fetchone()
        if head_mac is not None:
            # A signed chain stays signed: an entry without a MAC, or with another key's,
            # would break it for good.
            if self.key is None:
                raise AuditChainError(
                    f"the audit chain is signed (HMAC); set {KEY_ENV} to add to it"
                )
            if not hmac.compare_digest(_mac(self.key, f"{head_id}:{head_hash}"), str(head_mac)):
                raise AuditChainError(f"{KEY_ENV} is not the key this audit chain was signed with")
        if tail_id is None:
            last_id, prev = 0, GENESIS_HASH
        else:
            last_id, prev = int(tail_id), str(tail_hash)
        head_ok = (head_id is None and tail_id is None) or (head_id, head_hash) == (last_id, prev)
        seq_ok = seq is None or (isinstance(seq, int) and seq <= last_id)
        if not (head_ok and seq_ok):
            # Never extend a chain whose tail was tampered with: the new entries would
            # hide where the damage is.
            if not head_ok and head_id == last_id:
                what = f"the last entry ({last_id}) no longer has the hash its head recorded"
            elif not head_ok:
                what = f"the last entry is {last_id}, but the recorded head is entry {head_id}"
            else:
                what = f"entries were removed (the chain had reached entry {seq})"
            raise AuditChainError(f"audit chain tampered: {what}; run 'rafael audit verify'")
        return last_id, prev

    def _new_entry(
        self, entry_id: int, timestamp: str, new: NewEntry, prev: str
    ) -> tuple[AuditEntry, str]:
        """The entry that follows ``prev``, and its details as stored (canonical JSON)."""
        details_obj: dict[str, Any] = dict(new.details or {})
        try:
            details_text = canonical_json(details_obj)
        except (TypeError, ValueError):
            # NaN, a Path, non-string keys...: make it plain JSON first (slow path).
            details_obj = jsonable(details_obj)
            details_text = canonical_json(details_obj)
        digest = entry_hash(
            entry_id,
            timestamp,
            new.event_type,
            new.actor,
            new.module,
            new.change_id,
            details_text,
            prev,
        )
        mac = _mac(self.key, digest) if self.key else None
        entry = AuditEntry(
            entry_id,
            timestamp,
            new.event_type,
            new.actor,
            new.module,
            new.change_id,
            details_obj,
            prev,
            digest,
            mac,
        )
        return entry, details_text

    # -- reading ---------------------------------------------------------------------

    def entries(
        self, change_id: str | None = None, event_type: str | None = None
    ) -> Iterator[AuditEntry]:
        where, params = [], []
        if change_id is not None:
            where.append("change_id = ?")
            params.append(change_id)
        if event_type is not None:
            where.append("event_type = ?")
            params.append(event_type)
        sql = f"SELECT {_COLUMNS} FROM audit"
        if where:
            sql += " WHERE " + " AND ".join(where)
        for row in self.store.conn.execute(sql + " ORDER BY id", params):
            try:
                details = json.loads(row[6])
            except (TypeError, ValueError):
                details = {"_unparseable": str(row[6])}
            yield AuditEntry(
                row[0],
                row[1],
                row[2],
                row[3],
                row[4],
                row[5],
                details if isinstance(details, dict) else {"_value": details},
                row[7],
                row[8],
                row[9],
            )

    def count(self) -> int:
        return int(self.store.conn.execute("SELECT count(*) FROM audit").fetchone()[0])

    # -- verifying -------------------------------------------------------------------

    def verify(self) -> VerifyResult:
        """Walk the chain from the first entry; report the first entry that is wrong."""
        key = self.key
        conn = self.store.conn
        rows, head, seq_row = self._read_chain(conn)
        count = len(rows)
        prev = GENESIS_HASH
        expected = 1
        unchecked = 0
        sha256 = hashlib.sha256
        q = encode_basestring  # C; raises TypeError for anything but str

        def broken(entry_id: int, reason: str) -> VerifyResult:
            return VerifyResult(False, count, entry_id, reason, key is not None, unchecked)

        # The hot loop: the payload is _hash_payload() inlined (a call per row costs
        # ~10% of the walk); tests check both spell the same canonical JSON.
        for entry_id, ts, event, actor, module, change, details, prev_hash, stored, mac in rows:
            if entry_id != expected:
                if isinstance(entry_id, int) and entry_id > expected:
                    return broken(expected, f"entry {expected} is missing (next is {entry_id})")
                return broken(expected, f"entry {expected} has a bad id {entry_id!r}")
            if prev_hash != prev:
                return broken(entry_id, "prev_hash does not match the previous entry's hash")
            try:
                digest = sha256(
                    (
                        f"[{entry_id},{q(ts)},{q(event)},{q(actor)},"
                        f"{'null' if module is None else q(module)},"
                        f"{'null' if change is None else q(change)},{q(details)},{q(prev)}]"
                    ).encode()
                ).hexdigest()
            except TypeError:
                return broken(entry_id, "entry has fields of the wrong type (modified)")
            except UnicodeEncodeError:
                return broken(entry_id, "entry holds text that is not UTF-8 (modified)")
            if digest != stored:
                return broken(entry_id, "hash does not match the entry's content (modified)")
            if key is not None:
                if mac is None:
                    return broken(entry_id, f"entry has no HMAC but {KEY_ENV} is set")
                if not hmac.compare_digest(_mac(key, digest), str(mac)):
                    return broken(entry_id, "HMAC does not match (chain rewritten or wrong key)")
            elif mac is not None:
                unchecked += 1
            prev = digest
            expected += 1
        problem = _ending_problem(conn, expected - 1, prev, head, seq_row, count, key)
        if problem is not None:
            return broken(*problem)
        return VerifyResult(True, count, None, None, key is not None, unchecked)

    def _read_chain(self, conn: sqlite3.Connection) -> tuple[list[Any], Any, Any]:
        """Every entry, the head record and the entry counter, read in one transaction."""
        # One read transaction so a concurrent append cannot land between the reads.
        with self.store.snapshot():
            try:
                rows = (
                    _plain_cursor(conn)
                    .execute(f"SELECT {_COLUMNS} FROM audit ORDER BY id")
                    .fetchall()
                )
            except sqlite3.OperationalError:
                # Text that is not UTF-8 was written into the table behind our back;
                # read it leniently so the walk below can name the entry.
                conn.text_factory = lambda b: b.decode("utf-8", "surrogateescape")
                try:
                    rows = (
                        _plain_cursor(conn)
                        .execute(f"SELECT {_COLUMNS} FROM audit ORDER BY id")
                        .fetchall()
                    )
                finally:
                    conn.text_factory = str
            head = conn.execute("SELECT last_id, last_hash, mac FROM audit_head").fetchone()
            seq_row = conn.execute(f"SELECT {self.store.sequence_sql('audit')}").fetchone()
            if seq_row is not None and seq_row[0] is None:
                seq_row = None
        return rows, head, seq_row


def _ending_problem(
    conn: sqlite3.Connection,
    last_id: int,
    prev: str,
    head: Any,
    seq_row: Any,
    count: int,
    key: bytes | None,
) -> tuple[int, str] | None:
    """What is wrong after the last entry (the head record, the entry counter, a log
    wiped while the store still records history), if anything."""
    if head is None:
        if count:
            return (last_id, "the chain head record is missing")
    else:
        head_id, head_hash, head_mac = head[0], head[1], head[2]
        if not isinstance(head_id, int) or not isinstance(head_hash, str):
            return (last_id, "the chain head record was altered")
        if head_id > last_id:
            return (last_id + 1, f"entries {last_id + 1}..{head_id} were deleted")
        if head_id < last_id:
            return (head_id + 1, f"entry {head_id + 1} was added outside the log")
        if head_hash != prev:
            return (last_id, "the last entry does not match the chain head")
        if key is not None and not (
            head_mac is not None
            and hmac.compare_digest(_mac(key, f"{head_id}:{head_hash}"), str(head_mac))
        ):
            return (last_id, "the chain head's HMAC does not match")
    if seq_row is not None:
        seq = seq_row[0]
        if not isinstance(seq, int):
            return (last_id, "the entry counter (sqlite_sequence) was altered")
        if seq > last_id:
            return (last_id + 1, f"entries {last_id + 1}..{seq} were deleted")
    if count == 0:
        recorded = _recorded_history(conn)
        if recorded:
            return (
                1,
                f"the audit log is empty but the store records {recorded} (the log was wiped)",
            )
    return None


def _recorded_history(conn: sqlite3.Connection) -> str:
    """What else the store records ("3 runs and 2 proposals"), or "" when nothing: every
    run and proposal writes audit entries, so history without a log means a wipe."""
    parts = []
    for table, noun in (("runs", "run"), ("proposals", "proposal")):
        try:
            (n,) = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
        except sqlite3.OperationalError:  # the table is not there: nothing recorded
            continue
        if n:
            parts.append(f"{n} {noun}{'s' if n != 1 else ''}")
    return " and ".join(parts)


def _plain_cursor(conn: sqlite3.Connection) -> sqlite3.Cursor:
    # Plain tuples: sqlite3.Row objects cost measurably more over 100k rows.
    cur = conn.cursor()
    cur.row_factory = None
    return cur


class AuditChainError(RafaelError, RuntimeError):
    """The chain cannot be extended because it is already broken."""
