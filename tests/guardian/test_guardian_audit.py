"""The audit chain: every kind of tampering made directly in SQLite is caught."""

from __future__ import annotations

import contextlib
import itertools
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from guardian_factories import evidence, genome
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_rafael.guardian.audit import AuditChainError, AuditLog, NewEntry
from pytest_rafael.guardian.audit_hash import (
    GENESIS_HASH,
    _hash_payload,
    canonical_json,
    entry_hash,
)
from pytest_rafael.store.core import Store

COLUMNS = (
    "timestamp",
    "event_type",
    "actor",
    "module",
    "change_id",
    "details",
    "prev_hash",
    "hash",
)


def build_chain(path: Path, n: int = 8, key: bytes | None = None) -> None:
    with Store(path) as s:
        log = AuditLog(s, key)
        for i in range(n):
            log.append(
                "run_started",
                f"user{i % 3}",
                "payments" if i % 2 else None,
                f"c{i}",
                {"i": i, "note": 'ünïcode "q" \\ \n'},
            )


def verify(path: Path, key: bytes | None = None) -> tuple[bool, int | None, str | None]:
    with Store(path) as s:
        r = AuditLog(s, key).verify()
    return r.ok, r.first_broken, r.reason


def raw(path: Path, *sql: str) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    for stmt in sql:
        conn.execute(stmt)
    conn.close()


@pytest.fixture
def chain(tmp_path: Path) -> Path:
    path = tmp_path / "rafael.db"
    build_chain(path)
    assert verify(path) == (True, None, None)
    return path


@pytest.mark.backends
def test_append_links_entries_and_verifies(store: Store) -> None:
    log = AuditLog(store)
    a = log.append("run_started", "alice", details={"run_id": "r1"})
    b, c = log.append_many(
        [
            NewEntry("faults_injected", "alice", "db", None, {"n": 3}),
            NewEntry("run_finished", "alice"),
        ]
    )
    assert (a.id, b.id, c.id) == (1, 2, 3)
    assert a.prev_hash == GENESIS_HASH
    assert b.prev_hash == a.hash
    assert c.prev_hash == b.hash
    assert a.hash == entry_hash(
        1,
        a.timestamp,
        "run_started",
        "alice",
        None,
        None,
        canonical_json({"run_id": "r1"}),
        GENESIS_HASH,
    )
    result = log.verify()
    assert result.ok
    assert result.entries == 3
    assert not result.hmac_checked
    assert [e.event_type for e in log.entries()] == [
        "run_started",
        "faults_injected",
        "run_finished",
    ]


@pytest.mark.parametrize("column", COLUMNS)
def test_editing_any_column_is_caught(chain: Path, column: str) -> None:
    raw(chain, f"UPDATE audit SET {column} = 'x' || coalesce({column}, '') WHERE id = 4")
    ok, first, _ = verify(chain)
    assert not ok
    assert first == 4


def test_editing_details_keeping_valid_json_is_caught(chain: Path) -> None:
    raw(chain, "UPDATE audit SET details = '{\"i\":99}' WHERE id = 2")
    assert verify(chain)[:2] == (False, 2)


def test_retyping_a_column_is_caught(chain: Path) -> None:
    raw(chain, "UPDATE audit SET actor = 42 WHERE id = 3")
    assert verify(chain)[:2] == (False, 3)


def test_invalid_utf8_is_caught(chain: Path) -> None:
    raw(chain, "UPDATE audit SET actor = CAST(x'ff61' AS TEXT) WHERE id = 5")
    assert verify(chain)[:2] == (False, 5)


@pytest.mark.parametrize(
    ("where", "first"), [("id = 1", 1), ("id = 5", 5), ("id = 8", 8), ("id >= 6", 6), ("1", 1)]
)
def test_deleting_rows_is_caught(chain: Path, where: str, first: int) -> None:
    raw(chain, f"DELETE FROM audit WHERE {where}")
    ok, broken, reason = verify(chain)
    assert not ok, reason
    assert broken == first, reason


def test_truncating_and_fixing_up_the_head_is_still_caught(chain: Path) -> None:
    # Delete the last entry and make the head point at the new tail: the AUTOINCREMENT
    # counter still remembers entry 8.
    raw(
        chain,
        "DELETE FROM audit WHERE id = 8",
        "UPDATE audit_head SET last_id = 7, last_hash = (SELECT hash FROM audit WHERE id = 7)",
    )
    assert verify(chain)[:2] == (False, 8)


def test_deleting_the_head_is_caught(chain: Path) -> None:
    raw(chain, "DELETE FROM audit_head")
    assert not verify(chain)[0]


def test_inserting_in_the_middle_is_caught(chain: Path) -> None:
    raw(
        chain,
        "UPDATE audit SET id = id + 100 WHERE id >= 4",
        "UPDATE audit SET id = id - 99 WHERE id >= 104",
        "INSERT INTO audit (id, timestamp, event_type, actor, details, prev_hash, hash)"
        " SELECT 4, timestamp, 'proposal_approved', 'mallory', '{}', hash, hash"
        " FROM audit WHERE id = 3",
    )
    ok, first, _ = verify(chain)
    assert not ok
    assert first == 4


def test_appending_a_well_formed_entry_outside_the_log_is_caught(chain: Path) -> None:
    # An attacker who knows the scheme computes a correct hash for entry 9 but cannot
    # make the head agree without also editing it.
    conn = sqlite3.connect(chain)
    prev = conn.execute("SELECT hash FROM audit WHERE id = 8").fetchone()[0]
    ts = "2026-01-01T00:00:00+00:00"
    h = entry_hash(9, ts, "genome_adopted", "mallory", "payments", None, "{}", prev)
    conn.execute(
        "INSERT INTO audit (id, timestamp, event_type, actor, module, change_id,"
        " details, prev_hash, hash) VALUES (9, ?, 'genome_adopted', 'mallory',"
        " 'payments', NULL, '{}', ?, ?)",
        (ts, prev, h),
    )
    conn.commit()
    conn.close()
    assert verify(chain)[:2] == (False, 9)


def test_reordering_rows_is_caught(chain: Path) -> None:
    raw(
        chain,
        "UPDATE audit SET id = -1 WHERE id = 3",
        "UPDATE audit SET id = 3 WHERE id = 6",
        "UPDATE audit SET id = 6 WHERE id = -1",
    )
    assert verify(chain)[:2] == (False, 3)


def test_swapping_contents_between_rows_is_caught(chain: Path) -> None:
    raw(
        chain,
        "UPDATE audit SET actor = (SELECT actor FROM audit WHERE id = 2),"
        " event_type = 'proposal_rejected' WHERE id = 7",
    )
    assert verify(chain)[:2] == (False, 7)


def rewrite_whole_chain(path: Path) -> None:
    """What an attacker who knows the algorithm (not the key) does: edit and rehash all."""
    conn = sqlite3.connect(path)
    rows = conn.execute(
        "SELECT id, timestamp, event_type, actor, module, change_id, details FROM audit ORDER BY id"
    ).fetchall()
    prev = GENESIS_HASH
    for r in rows:
        actor = "mallory" if r[0] == 2 else r[3]
        h = entry_hash(r[0], r[1], r[2], actor, r[4], r[5], r[6], prev)
        conn.execute(
            "UPDATE audit SET actor = ?, prev_hash = ?, hash = ? WHERE id = ?",
            (actor, prev, h, r[0]),
        )
        prev = h
    conn.execute("UPDATE audit_head SET last_hash = ?", (prev,))
    conn.commit()
    conn.close()


def test_without_a_key_a_full_rewrite_verifies(tmp_path: Path) -> None:
    # Documents the limit of a bare hash chain: the reason the HMAC exists.
    path = tmp_path / "r.db"
    build_chain(path)
    rewrite_whole_chain(path)
    assert verify(path)[0]


def test_with_a_key_a_full_rewrite_is_caught(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    build_chain(path, key=b"s3cret")
    assert verify(path, b"s3cret")[0]
    rewrite_whole_chain(path)
    assert verify(path, b"s3cret")[:2] == (False, 2)
    # The wrong key fails from the first entry.
    assert verify(path, b"other")[:2] == (False, 1)


def test_with_a_key_entries_without_hmac_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    build_chain(path)
    ok, first, reason = verify(path, b"k")
    assert not ok
    assert first == 1
    assert "HMAC" in (reason or "")


def test_with_a_key_the_head_mac_is_checked(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    build_chain(path, key=b"k")
    raw(
        path,
        "DELETE FROM audit WHERE id = 8",
        "UPDATE audit_head SET last_id = 7, last_hash = (SELECT hash FROM audit WHERE id = 7)",
        "UPDATE sqlite_sequence SET seq = 7 WHERE name = 'audit'",
    )
    assert verify(path)[0]  # hash-only verification cannot see a tidy truncation
    assert not verify(path, b"k")[0]


def test_append_refuses_to_extend_a_truncated_chain(chain: Path) -> None:
    raw(chain, "DELETE FROM audit WHERE id = 8")
    with Store(chain) as s:
        log = AuditLog(s)
        with pytest.raises(AuditChainError):
            log.append("run_started", "alice")
        assert log.count() == 7  # nothing appended: the gap stays visible


@given(
    st.text(),
    st.text(),
    st.text(),
    st.one_of(st.none(), st.text()),
    st.one_of(st.none(), st.text()),
    st.text(),
    st.integers(1, 2**40),
)
def test_hash_payload_is_canonical_json(
    a: str, b: str, c: str, d: str | None, e: str | None, f: str, n: int
) -> None:
    assert _hash_payload(n, a, b, c, d, e, f, GENESIS_HASH) == canonical_json(
        [n, a, b, c, d, e, f, GENESIS_HASH]
    )


# -- the property: any tampering is detected -------------------------------------------

TEMPLATE_SIZE = 12


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tpl") / "chain.db"
    build_chain(path, TEMPLATE_SIZE)
    with Store(path) as s:
        s.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path


_cases = itertools.count()


def _copy(template: Path, tmp: Path) -> Path:
    # A fresh file per example: a reused name would pick up the last example's -wal.
    dest = tmp / f"case{next(_cases)}.db"
    shutil.copyfile(template, dest)
    return dest


Tamper = Callable[[sqlite3.Connection], None]

values = st.one_of(
    st.text(max_size=20),
    st.integers(-(2**63), 2**63 - 1),
    st.none(),
    st.binary(max_size=8),
    st.floats(allow_nan=False),
)


@st.composite
def tampering(draw: st.DrawFn) -> tuple[str, Tamper]:
    kind = draw(st.sampled_from(["edit", "delete", "insert", "reorder", "renumber"]))
    i = draw(st.integers(1, TEMPLATE_SIZE))
    if kind == "edit":
        col = draw(st.sampled_from(("id", *COLUMNS)))
        value = draw(values)

        def edit(conn: sqlite3.Connection) -> None:
            if col == "id":
                conn.execute("UPDATE audit SET id = ? WHERE id = ?", (draw_id, i))
            else:
                conn.execute(f"UPDATE audit SET {col} = ? WHERE id = ?", (value, i))

        draw_id = draw(st.integers(-5, TEMPLATE_SIZE + 5).filter(lambda x: x != i))
        return f"edit {col} of {i} to {value!r}", edit
    if kind == "delete":
        j = draw(st.integers(i, TEMPLATE_SIZE))
        return f"delete {i}..{j}", lambda c: c.execute(
            "DELETE FROM audit WHERE id BETWEEN ? AND ?", (i, j)
        )
    if kind == "insert":
        # Copy an existing row (valid-looking hashes) into a new position.
        src = draw(st.integers(1, TEMPLATE_SIZE))
        at = draw(st.integers(1, TEMPLATE_SIZE + 1))

        def insert(conn: sqlite3.Connection) -> None:
            conn.execute("UPDATE audit SET id = id + 1000 WHERE id >= ?", (at,))
            conn.execute("UPDATE audit SET id = id - 999 WHERE id >= 1000")
            conn.execute(
                "INSERT INTO audit (id, timestamp, event_type, actor, module, change_id,"
                " details, prev_hash, hash, mac) SELECT ?, timestamp, event_type, actor,"
                " module, change_id, details, prev_hash, hash, mac FROM audit WHERE id = ?",
                (at, src if src < at else src + 1),
            )

        return f"insert copy of {src} at {at}", insert
    j = draw(st.integers(1, TEMPLATE_SIZE).filter(lambda x: x != i))
    if kind == "reorder":

        def swap(conn: sqlite3.Connection) -> None:
            conn.execute("UPDATE audit SET id = -1 WHERE id = ?", (i,))
            conn.execute("UPDATE audit SET id = ? WHERE id = ?", (i, j))
            conn.execute("UPDATE audit SET id = ? WHERE id = -1", (j,))

        return f"swap {i} and {j}", swap

    def shift(conn: sqlite3.Connection) -> None:
        # Renumber every entry (e.g. to hide a deletion at the start).
        conn.execute("UPDATE audit SET id = id + 1000")
        conn.execute("UPDATE audit SET id = id - 1000 + ?", (j - 1,))

    return f"renumber from {j}", shift


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(tampering(), min_size=1, max_size=3))
def test_any_tampering_is_detected(
    template: Path, tmp_path: Path, ops: list[tuple[str, Tamper]]
) -> None:
    path = _copy(template, tmp_path)
    src = sqlite3.connect(template)
    before = src.execute("SELECT * FROM audit ORDER BY id").fetchall()
    src.close()
    conn = sqlite3.connect(path)
    try:
        for _, op in ops:
            # The schema may refuse an operation (NOT NULL, duplicate id): not a tampering.
            with contextlib.suppress(sqlite3.IntegrityError):
                op(conn)
        conn.commit()
        after = conn.execute("SELECT * FROM audit ORDER BY id").fetchall()
    finally:
        conn.close()
    if after == before:
        return  # the operations cancelled out (e.g. an edit to the same value)
    ok, first, reason = verify(path)
    assert not ok, f"undetected: {[d for d, _ in ops]}"
    assert first is not None
    assert reason


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_head SET last_id = 'x'",
        "UPDATE audit_head SET last_hash = 7",
        "UPDATE sqlite_sequence SET seq = 'x' WHERE name = 'audit'",
        "UPDATE sqlite_sequence SET seq = 99 WHERE name = 'audit'",
    ],
)
def test_altered_bookkeeping_is_caught_and_blocks_appends(chain: Path, statement: str) -> None:
    raw(chain, statement)
    assert not verify(chain)[0]
    with Store(chain) as s, pytest.raises(AuditChainError):
        AuditLog(s).append("run_started", "alice")


def test_wiping_the_whole_log_is_caught_when_history_remains(make_guardian: Any) -> None:
    g = make_guardian()
    g.propose("search", None, genome(1), evidence())
    assert g.audit.verify().ok
    conn = g.store.conn
    conn.execute("DELETE FROM audit")
    conn.execute("DELETE FROM audit_head")
    conn.execute("DELETE FROM sqlite_sequence WHERE name = 'audit'")
    result = g.audit.verify()
    assert not result.ok
    assert "empty but the store records 1 proposal" in (result.reason or "")


@pytest.mark.backends
def test_a_signed_chain_refuses_unsigned_or_foreign_appends(
    make_guardian: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pytest_rafael.guardian.audit import AuditChainError, AuditLog

    monkeypatch.setenv("RAFAEL_AUDIT_KEY", "s3cret")
    g = make_guardian()
    g.record("run_started")
    with pytest.raises(AuditChainError, match="signed"):
        AuditLog(g.store, None).append("run_finished", "alice")
    with pytest.raises(AuditChainError, match="not the key"):
        AuditLog(g.store, b"other").append("run_finished", "alice")
    assert g.audit.verify().ok
