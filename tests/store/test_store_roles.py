"""The database roles of docs/store.md, run as written against a real PostgreSQL: CI
records runs and proposals, a reviewer approves (signed), and nobody can change or
delete audit rows."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_rafael.genome.state import save_engine_state
from pytest_rafael.guardian import Guardian, GuardianConfig
from pytest_rafael.guardian.audit import AuditLog
from pytest_rafael.servers import Server
from pytest_rafael.store.core import Store, StoreError

DOC = Path(__file__).resolve().parents[2] / "docs" / "store.md"


def roles_sql() -> list[str]:
    """The ``-- rafael roles`` SQL block of docs/store.md, as lines."""
    blocks = re.findall(r"```sql\n(.*?)```", DOC.read_text(), re.S)
    (block,) = [b for b in blocks if b.startswith("-- rafael roles")]
    return block.splitlines()


def _run_block(server: Server) -> None:
    """Execute the block as a superuser would in psql, ``\\connect`` and the migrate
    step included."""
    import psycopg

    base = f"postgresql://{{user}}@{server.host}:{server.port}/{{db}}"
    conn = psycopg.connect(base.format(user="postgres", db="postgres"), autocommit=True)
    statement = ""
    try:
        for line in roles_sql():
            if line.startswith("\\connect"):
                _, db, user = line.split()
                conn.close()
                conn = psycopg.connect(base.format(user=user, db=db), autocommit=True)
            elif line.startswith("\\migrate"):
                Store(base.format(user="rafael_owner", db="rafael")).close()
            elif not line.startswith("--"):
                statement += line + "\n"
                if line.rstrip().endswith(";"):
                    conn.execute(statement)
                    statement = ""
    finally:
        conn.close()


@pytest.fixture
def roles(pg_server: Server) -> Iterator[dict[str, str]]:
    import psycopg

    _run_block(pg_server)
    yield {
        role: f"postgresql://rafael_{role}@{pg_server.host}:{pg_server.port}/rafael"
        for role in ("owner", "ci", "reviewer")
    }
    with psycopg.connect(pg_server.url, autocommit=True) as conn:
        conn.execute("DROP DATABASE rafael WITH (FORCE)")
        for role in ("rafael_ci", "rafael_reviewer", "rafael_owner"):
            conn.execute(f"DROP ROLE {role}")


def _key(folder: Path, name: str) -> Path:
    path = folder / name
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(path)], check=True
    )
    return path


def _guardian(store: Store, root: Path, actor: str) -> Guardian:
    return Guardian.open(
        store, root, root / "rafael.genome.yaml", actor=actor, config=GuardianConfig()
    )


EVIDENCE: dict[str, Any] = {
    "run_id": "run-1",
    "tests": [
        {
            "nodeid": "t.py::test_pay",
            "scenario": "db_failure",
            "severity": "low",
            "baseline_fitness": 0.5,
            "best_fitness": 0.8,
            "success_rate": 0.9,
            "iterations": 5,
        }
    ],
}
GENOME = {
    "generation": 1,
    "genes": {
        "retry": {
            "max_attempts": 3,
            "base_delay": 0.05,
            "max_delay": 1.0,
            "multiplier": 2.0,
            "jitter": 0.1,
        }
    },
}


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_ci_records_reviewers_approve_nobody_edits_the_audit(
    roles: dict[str, str], tmp_path: Path, backend: str
) -> None:
    bob = _key(tmp_path, "bob")
    pub = " ".join(Path(f"{bob}.pub").read_text().split()[:2])
    (tmp_path / "rafael.allowed_signers").write_text(f'bob namespaces="rafael" {pub}\n')

    with Store(roles["ci"]) as ci:
        ci.save_run(
            {
                "run_id": "r1",
                "started_at": "a",
                "finished_at": "b",
                "seed": 1,
                "chaos": True,
                "actor": "ci",
                "tests": [],
            },
            run_group="g",
        )
        save_engine_state(ci, "t.py::test_pay::db_failure", "payments", {"version": 1})
        proposal = _guardian(ci, tmp_path, "ci-bot").propose("payments", None, GENOME, EVIDENCE)
        assert proposal.status == "pending"  # a first genome: medium impact
        for statement in (
            "UPDATE audit SET actor = 'mallory'",
            "DELETE FROM audit",
            "TRUNCATE audit",
            "INSERT INTO approvals (proposal_id, approver, reason, at) VALUES ('x', 'ci', '', '')",
            "CREATE TABLE sneaky (x int)",
        ):
            with pytest.raises(StoreError, match=r"permission denied|append-only"):
                ci.conn.execute(statement)

    with Store(roles["reviewer"]) as reviewer:
        g = _guardian(reviewer, tmp_path, "bob")
        approved = g.approve(proposal.id, "bob", key=bob, reason="looks right")
        assert approved.status == "adopted"
        for statement in ("UPDATE audit SET actor = 'mallory'", "DELETE FROM audit"):
            with pytest.raises(StoreError, match=r"permission denied|append-only"):
                reviewer.conn.execute(statement)

    with Store(roles["owner"]) as owner:  # even the owner: the trigger refuses
        with pytest.raises(StoreError, match="append-only"):
            owner.conn.execute("DELETE FROM audit")
        log = AuditLog(owner)
        assert log.verify().ok
        events = [e.event_type for e in log.entries()]
    assert "proposal_created" in events
    assert "proposal_approved" in events or "genome_adopted" in events
