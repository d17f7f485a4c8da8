"""Compliance controls pass on a clean history and flip when their evidence is removed."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from guardian_factories import evidence, genome, key

from pytest_rafael.guardian import Guardian, GuardianConfig
from pytest_rafael.guardian.compliance import FRAMEWORKS, check_compliance
from pytest_rafael.guardian.config import ModulePolicy
from pytest_rafael.store.core import Store

CFG = GuardianConfig(
    critical_role="security-lead",
    modules={"payments": ModulePolicy("low", ("pci",)), "ledger": ModulePolicy("critical")},
)


@pytest.fixture
def history(make_guardian: Callable[..., Guardian]) -> dict[str, str]:
    """A realistic history: an auto-adopted change, a pci change with two approvers, a
    critical one with the role, a rejected one and a pending one."""
    g = make_guardian(config=CFG)
    g.record("run_started", details={"run_id": "run-1"})
    search = g.propose("search", None, genome(1), evidence())
    g.approve(search.id, "bob", key=key("bob"), reason="first genome")
    low = g.propose("search", genome(1), genome(2, base_delay=0.051), evidence())
    pci = g.propose("payments", None, genome(1), evidence())
    g.approve(pci.id, "bob", key=key("bob"))
    g.approve(pci.id, "carol", key=key("carol"))
    crit = g.propose("ledger", None, genome(1), evidence())
    g.approve(crit.id, "bob", key=key("bob"))
    g.approve(crit.id, "dave", key=key("dave"), role="security-lead")
    rejected = g.propose(
        "search", genome(2, base_delay=0.051), genome(3, max_delay=9.0), evidence()
    )
    g.reject(rejected.id, "carol", "too aggressive", key=key("carol"))
    pending = g.propose("search", genome(2, base_delay=0.051), genome(3, max_delay=9.0), evidence())
    g.record("run_finished")
    assert g.get(low.id).status == "adopted"
    return {
        "pci": pci.id,
        "crit": crit.id,
        "low": low.id,
        "search": search.id,
        "rejected": rejected.id,
        "pending": pending.id,
    }


SIGNERS: list[Path] = []


@pytest.fixture(autouse=True)
def _signers(tmp_path: Path) -> None:
    SIGNERS[:] = [tmp_path / "rafael.allowed_signers"]


def controls(store: Store, frameworks: list[str] | None = None) -> dict[str, bool]:
    # The project's allowed-signers file: the chain controls verify every signature.
    signers = SIGNERS[0]
    return {
        f"{c.framework}:{c.id}": c.passed
        for c in check_compliance(store, CFG, None, frameworks, allowed_signers=signers)
    }


def failing(store: Store) -> set[str]:
    return {k for k, ok in controls(store).items() if not ok}


def sql(store: Store, *statements: str) -> None:
    """Edit the store behind rafael's back: the SQLite file, or on PostgreSQL as a
    superuser with triggers off (what a database owner bent on tampering could do)."""
    if store.backend == "postgresql":
        import psycopg

        with psycopg.connect(store.url, autocommit=True) as pg:  # type: ignore[attr-defined]
            pg.execute("SET session_replication_role = replica")
            for s in statements:
                pg.execute(s.replace("%", "%%"))
        return
    conn = sqlite3.connect(store.path)
    for s in statements:
        conn.execute(s)
    conn.commit()
    conn.close()


@pytest.mark.backends  # the controls read the store through its interface
def test_clean_history_passes_every_framework(store: Store, history: dict[str, str]) -> None:
    result = check_compliance(store, CFG)
    assert {c.framework for c in result} == set(FRAMEWORKS)
    assert all(c.passed for c in result), [c for c in result if not c.passed]
    assert all(c.evidence for c in result)


def test_removing_pci_evidence_fails_pci(store: Store, history: dict[str, str]) -> None:
    sql(store, f"UPDATE proposals SET evidence = '{{}}' WHERE id = '{history['pci']}'")
    bad = failing(store)
    assert "pci-dss:6.5.1" in bad
    assert "iso27001:A.5.33" in bad  # the record no longer matches what was audited
    assert "soc2:CC8.1" in bad


def test_removing_an_approval_fails_separation_of_duties(
    store: Store, history: dict[str, str]
) -> None:
    sql(
        store,
        f"DELETE FROM approvals WHERE proposal_id = '{history['pci']}' AND approver = 'carol'",
    )
    bad = failing(store)
    assert {"soc2:CC8.1", "pci-dss:6.5.1"} <= bad
    assert "soc2:CC7.2" not in bad  # the chain itself is intact


@pytest.mark.backends  # the controls read the store through its interface
def test_an_author_approval_slipped_into_the_table_is_caught(
    store: Store, history: dict[str, str]
) -> None:
    sql(
        store,
        "INSERT INTO approvals (proposal_id, approver, role, reason, at) VALUES"
        f" ('{history['pending']}', 'alice', NULL, 'self', '2026-01-01')",
    )
    bad = failing(store)
    assert {"soc2:CC8.1", "hipaa:164.312(d)"} <= bad


def test_removing_the_role_fails_critical(store: Store, history: dict[str, str]) -> None:
    sql(store, f"UPDATE approvals SET role = NULL WHERE proposal_id = '{history['crit']}'")
    assert "soc2:CC8.1" in failing(store)


@pytest.mark.backends  # the controls read the store through its interface
def test_removing_audit_entries_fails_documentation_and_chain(
    store: Store, history: dict[str, str]
) -> None:
    sql(store, f"DELETE FROM audit WHERE change_id = '{history['rejected']}'")
    bad = failing(store)
    assert {
        "iso27001:A.8.32",
        "iso27001:A.8.15",
        "soc2:CC7.2",
        "gdpr:Art. 5(1)(f)",
        "hipaa:164.312(b)",
        "pci-dss:10.3.2",
    } <= bad


def test_removing_the_rationale_fails_iso(store: Store, history: dict[str, str]) -> None:
    sql(store, f"UPDATE proposals SET reasons = '[]' WHERE id = '{history['low']}'")
    assert "iso27001:A.8.32" in failing(store)


def test_downgrading_impact_in_the_record_is_caught(store: Store, history: dict[str, str]) -> None:
    sql(store, f"UPDATE proposals SET impact = 'low' WHERE id = '{history['crit']}'")
    assert "iso27001:A.5.33" in failing(store)


def test_personal_data_in_details_fails_gdpr(
    store: Store, history: dict[str, str], make_guardian: Callable[..., Guardian]
) -> None:
    g = make_guardian(config=CFG)
    g.approve(history["pending"], "erin", key=key("erin"), reason="call me at erin@example.com")
    assert failing(store) == {"gdpr:Art. 5(1)(c)"}


def test_anonymous_approver_fails_hipaa(
    store: Store, history: dict[str, str], make_guardian: Callable[..., Guardian]
) -> None:
    from pytest_rafael.guardian.policy import PolicyError

    with pytest.raises(PolicyError, match="does not identify a person"):
        make_guardian(config=CFG).approve(history["pending"], "admin")
    # One recorded before that rule (or slipped into the table) is still caught.
    with store.transaction() as conn:
        conn.execute(
            "INSERT INTO approvals (proposal_id, approver, role, reason, at)"
            " VALUES (?, 'admin', NULL, '', '2026-01-01T00:00:00+00:00')",
            (history["pending"],),
        )
    assert "hipaa:164.312(d)" in failing(store)


def test_readable_store_fails_hipaa(store: Store, history: dict[str, str]) -> None:
    os.chmod(store.path, 0o644)
    assert failing(store) == {"hipaa:164.312(a)(1)"}
    os.chmod(store.path, 0o600)
    assert failing(store) == set()


def test_single_approver_pci_adoption_is_caught(tmp_path: Path, store: Store) -> None:
    # Adopted under a laxer configuration (no pci tag); audited under the real one.
    lax = Guardian.open(
        store, tmp_path, tmp_path / "g.yaml", actor="alice", config=GuardianConfig()
    )
    p = lax.propose("payments", None, genome(1), evidence())
    lax.approve(p.id, "bob", key=key("bob"))
    assert controls(store, ["pci-dss"]) == {"pci-dss:6.5.1": False, "pci-dss:10.3.2": True}


def test_empty_store_passes_vacuously_with_evidence(store: Store) -> None:
    result = check_compliance(store, CFG, None, ["soc2"])
    assert all(c.passed for c in result)
    assert result[0].evidence[0].startswith("0 adoption(s)")


def test_unknown_framework(store: Store) -> None:
    with pytest.raises(ValueError, match="unknown framework"):
        check_compliance(store, CFG, None, ["sox"])


def shipped(store: Store, path: Path) -> bool:
    (control,) = [
        c for c in check_compliance(store, CFG, None, ["iso27001"], path) if c.id == "A.8.9"
    ]
    return control.passed


def test_genome_file_must_hold_only_adopted_genomes(
    store: Store, history: dict[str, str], tmp_path: Path
) -> None:
    from pytest_rafael.genome.file import load_genome_file, write_genome_file
    from pytest_rafael.genome.genome import Genome

    path = tmp_path / "rafael.genome.yaml"
    assert shipped(store, path)
    genomes = load_genome_file(path)
    assert set(genomes) == {"search", "payments", "ledger"}
    # Hand-edit one module: the shipped genome no longer is the adopted one.
    edited = dict(genomes)
    edited["search"] = Genome.from_dict("search", genome(9, max_attempts=9))
    write_genome_file(path, edited)
    assert not shipped(store, path)
    # A module nobody proposed.
    write_genome_file(path, {**genomes, "rogue": Genome.from_dict("rogue", genome(1))})
    assert not shipped(store, path)
    # An adopted module removed from the file.
    write_genome_file(path, {k: v for k, v in genomes.items() if k != "ledger"})
    assert not shipped(store, path)
    write_genome_file(path, genomes)
    assert shipped(store, path)
    path.unlink()
    assert not shipped(store, path)


def test_reapproval_completes_an_adoption_interrupted_after_the_file_write(
    store: Store, make_guardian: Callable[..., Guardian], tmp_path: Path
) -> None:
    # Simulate a kill between the genome file's rename and the store's commit: the file
    # holds the candidate and an anchor the store never committed; the store still says
    # pending. That is indistinguishable from a store rolled back behind the file, so
    # decisions are refused until a person has checked the file and removed the anchor.
    from pytest_rafael.genome.file import AuditAnchor, write_genome_file
    from pytest_rafael.genome.genome import Genome
    from pytest_rafael.guardian.audit import AuditChainError

    g = make_guardian(config=CFG)
    g.approve(g.propose("search", None, genome(1), evidence()).id, "bob", key=key("bob"))
    p = g.propose("search", genome(1), genome(2, max_attempts=5), evidence())
    path = tmp_path / "rafael.genome.yaml"
    genomes = {"search": Genome.from_dict("search", genome(2, max_attempts=5))}
    write_genome_file(path, genomes, AuditAnchor(g.audit.count() + 2, "f" * 64, p.id))
    with pytest.raises(AuditChainError, match="rolled back"):
        g.approve(p.id, "bob", key=key("bob"))
    write_genome_file(path, genomes)  # the anchor line removed after checking the file
    assert g.approve(p.id, "bob", key=key("bob")).status == "adopted"
    assert shipped(store, path)
    assert g.summary()["audit"]["anchor"]["status"] == "ok"


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
@pytest.mark.parametrize(
    "statement",
    [
        "ALTER TABLE audit DISABLE TRIGGER audit_append_only",
        "GRANT SELECT, UPDATE ON audit TO PUBLIC",
    ],
)
def test_an_open_postgresql_audit_table_fails_hipaa(
    store: Store, history: dict[str, str], statement: str
) -> None:
    assert failing(store) == set()
    sql(store, statement)
    assert failing(store) == {"hipaa:164.312(a)(1)"}
