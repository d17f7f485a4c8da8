"""The store interface on both backends (SQLite and a real PostgreSQL): versioned schema
migrations, the refusal of a newer store, merged evolution state, the append-only audit
table, and a connection lost mid-transaction."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from pytest_rafael.cli import main
from pytest_rafael.genome.evolution import STATE_VERSION
from pytest_rafael.genome.state import load_engine_state, merge_states, save_engine_state
from pytest_rafael.guardian.audit import AuditLog
from pytest_rafael.store import core as store_module
from pytest_rafael.store import postgres as store_pg
from pytest_rafael.store.core import Store, StoreError
from pytest_rafael.store.schema import SCHEMA_VERSION, migrate, schema_version

pytestmark = pytest.mark.backends


def run_doc(run_id: str, nodeid: str = "t.py::test_a") -> dict[str, Any]:
    return {
        "run_id": run_id,
        "started_at": f"2026-01-01T00:00:{run_id[-2:]}+00:00",
        "finished_at": "2026-01-01T00:01:00+00:00",
        "seed": 2**40,  # wider than 32 bits: PostgreSQL must keep it
        "chaos": True,
        "actor": "ci",
        "tests": [
            {
                "nodeid": nodeid,
                "scenario": "db_failure",
                "module": "orders",
                "severity": "high",
                "success_rate": 0.123456789012,
                "baseline_fitness": 0.5,
                "best_fitness": 0.75,
                "adopted": False,
                "proposal_id": None,
            }
        ],
    }


def test_an_older_store_is_upgraded_in_place(
    store_target: Path | str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A store at schema version 1 (before run groups), with a run and audit entries.
    monkeypatch.setattr(store_module, "migrate", lambda s: migrate(s, upto=1))
    monkeypatch.setattr(store_pg, "migrate", lambda s: migrate(s, upto=1))
    with Store(store_target) as old:
        assert schema_version(old) == 1
        assert not old.has_column("runs", "run_group")
        old.conn.execute(
            "INSERT INTO runs (run_id, started_at, finished_at, seed, chaos, actor,"
            " results_json) VALUES ('r01', 'a', 'b', 1, 1, 'ci', '{\"run_id\": \"r01\"}')"
        )
        AuditLog(old).append("run_started", "ci")
    monkeypatch.undo()
    with Store(store_target) as s:
        assert schema_version(s) == SCHEMA_VERSION
        assert s.has_column("runs", "run_group")
        assert [r["run_id"] for r in s.runs()] == ["r01"]
        log = AuditLog(s)
        log.append("run_finished", "ci")
        assert log.verify().ok
        assert log.count() == 2
        versions = [int(r[0]) for r in s.conn.execute("SELECT version FROM rafael_schema")]
        assert sorted(versions) == list(range(1, SCHEMA_VERSION + 1))


def test_a_newer_store_is_refused_with_one_line(
    store_target: Path | str, capsys: pytest.CaptureFixture[str]
) -> None:
    with Store(store_target) as s, s.transaction() as conn:
        conn.execute(
            "INSERT INTO rafael_schema (version, description, applied_at) VALUES (99, 'x', 'y')"
        )
    with pytest.raises(StoreError) as info:
        Store(store_target)
    message = str(info.value)
    assert "version 99" in message
    assert "upgrade pytest-rafael" in message
    assert "\n" not in message
    assert main(["audit", "verify", "--store", str(store_target)]) == 2
    err = capsys.readouterr().err
    assert "version 99" in err
    assert err.count("\n") == 1


def test_runs_keep_their_values_and_upserts_replace(store_target: Path | str) -> None:
    with Store(store_target) as s:
        s.save_run(run_doc("r01"), run_group="g1")
        s.save_run(run_doc("r02", "t.py::test_b"), run_group="g1")
        s.save_run(run_doc("r03"))
        s.save_run(run_doc("r01"), run_group="g1")  # a re-save replaces, never doubles
        assert [r["run_id"] for r in s.runs()] == ["r01", "r02", "r03"]
        assert [r["run_id"] for r in s.group_runs("g1")] == ["r01", "r02"]
        rows = s.history()
        assert len(rows) == 3
        assert rows[0]["success_rate"] == 0.123456789012
        assert s.runs()[0]["seed"] == 2**40


def _state(entries: dict[str, tuple[int, float]], observations: int) -> dict[str, Any]:
    return {
        "version": STATE_VERSION,
        "observations": observations,
        "runs": 1,
        "max_generation": 1,
        "entries": {
            gid: {
                "genome": {"generation": 1, "genes": {}},
                "n": n,
                "sum": total,
                "ss": total,
                "succ": float(n),
                "evidence": {},
            }
            for gid, (n, total) in entries.items()
        },
        "history": [[1, i, "x", 0.5] for i in range(observations)],
    }


def test_two_shards_evolving_one_pair_merge_their_observations(
    store_target: Path | str,
) -> None:
    with Store(store_target) as s:
        save_engine_state(s, "k", "orders", _state({"base": (2, 1.0)}, 2))
        base = load_engine_state(s, "k")
        # Both shards start from the same saved state...
        shard_a = _state({"base": (4, 2.0), "cand-a": (3, 2.4)}, 7)
        shard_b = _state({"base": (3, 1.5), "cand-b": (2, 1.8)}, 5)
        assert save_engine_state(s, "k", "orders", shard_a, base=base) is False
        # ...so the second save finds the first one's and merges instead of overwriting.
        assert save_engine_state(s, "k", "orders", shard_b, base=base) is True
        merged = load_engine_state(s, "k")
        assert merged is not None
        entries = merged["entries"]
        assert entries["base"]["n"] == 2 + 2 + 1
        assert entries["base"]["sum"] == pytest.approx(1.0 + 1.0 + 0.5)
        assert entries["cand-a"]["n"] == 3
        assert entries["cand-b"]["n"] == 2
        assert merged["observations"] == 2 + 5 + 3
        assert len(merged["history"]) == 10
        (revision,) = s.conn.execute(
            "SELECT revision FROM genome_engine_state WHERE key = 'k'"
        ).fetchone()
        assert revision == 3


def test_merging_with_another_engine_format_keeps_the_newer_state() -> None:
    mine = _state({"a": (1, 1.0)}, 1)
    theirs = {**_state({"b": (1, 1.0)}, 1), "version": STATE_VERSION + 1}
    assert merge_states(None, mine, theirs) == mine


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
@pytest.mark.parametrize(
    "statement", ["UPDATE audit SET actor = 'mallory'", "DELETE FROM audit", "TRUNCATE audit"]
)
def test_postgresql_refuses_to_change_audit_rows(store_target: str, statement: str) -> None:
    with Store(store_target) as s:
        log = AuditLog(s)
        log.append("run_started", "ci")
        with pytest.raises(StoreError, match="append-only"):
            s.conn.execute(statement)
        assert log.verify().ok
        assert log.count() == 1


def _kill_connections(url: str) -> int:
    import psycopg

    database = url.rsplit("/", 1)[1]
    admin = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
            (database,),
        ).fetchall()
    return len(rows)


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_a_connection_lost_mid_append_leaves_the_chain_whole(store_target: str) -> None:
    with Store(store_target) as s:
        AuditLog(s).append("run_started", "ci")
    s = Store(store_target)
    log = AuditLog(s)

    def append_then_lose_the_connection() -> None:
        with s.transaction() as conn:
            log.append_in(conn, [store_entry("faults_injected"), store_entry("faults_reverted")])
            assert _kill_connections(store_target) >= 1

    with pytest.raises(StoreError) as info:
        append_then_lose_the_connection()
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(store_target)  # the store, named (no password here)
    s.close()
    with Store(store_target) as again:
        log = AuditLog(again)
        assert log.verify().ok
        assert log.count() == 1  # the half-done append was rolled back, not half-written
        log.append("run_finished", "ci")
        assert log.verify().ok


def store_entry(event: str) -> Any:
    from pytest_rafael.guardian.audit import NewEntry

    return NewEntry(event, "ci", "orders", None, {"n": 1})


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_a_password_never_appears_in_messages(pg_server: Any, store_target: str) -> None:
    url = store_target.replace("postgres@", "postgres:s3cret@").rsplit("/", 1)[0] + "/nope"
    with pytest.raises(StoreError) as info:
        Store(url)
    assert "s3cret" not in str(info.value)
    assert "postgresql://postgres@" in str(info.value)


@pytest.mark.sqlite_only
def test_a_foreign_sqlite_file_is_still_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE notes (x)")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="not a rafael store"):
        Store(path)
    tables = [r[0] for r in sqlite3.connect(path).execute("SELECT name FROM sqlite_master")]
    assert tables == ["notes"]
