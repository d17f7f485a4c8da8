"""What the compliance controls look at: the store, the audit chain and the
genome file, read once per check."""

from __future__ import annotations

import os
import stat
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_rafael.guardian.audit import AuditEntry, AuditLog, VerifyResult
from pytest_rafael.guardian.config import GuardianConfig
from pytest_rafael.guardian.integrity import verify_integrity
from pytest_rafael.guardian.proposals import (
    Proposal,
    ProposalRepo,
    ensure_proposal_schema,
)
from pytest_rafael.store.core import Store

_SHOW = 5  # evidence lines listed per problem kind


GenomeFile = tuple[str, Mapping[str, Any] | None, str | None]


@dataclass(frozen=True)
class Control:
    framework: str
    id: str
    title: str
    passed: bool
    evidence: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "framework": self.framework,
            "id": self.id,
            "title": self.title,
            "passed": self.passed,
            "evidence": list(self.evidence),
        }


@dataclass(frozen=True)
class Facts:
    """Everything the controls look at, read once."""

    verify: VerifyResult
    proposals: tuple[Proposal, ...]
    entries: Mapping[str, tuple[AuditEntry, ...]]  # by change_id
    all_details: tuple[tuple[int, Mapping[str, Any]], ...]
    store_modes: Mapping[str, int]
    config: GuardianConfig
    # The genome file checked against the adoptions: (path, genes per module, or an
    # error text); None when no file was named.
    genome_file: GenomeFile | None = None
    # A PostgreSQL store has no file: what its grants and trigger allow instead (the
    # problems found; None for an SQLite store).
    db_access: tuple[str, ...] | None = None

    @classmethod
    def gather(
        cls,
        store: Store,
        config: GuardianConfig,
        key: bytes | None,
        genome_file: Path | None = None,
        allowed_signers: Path | None = None,
    ) -> Facts:
        log = AuditLog(store, key)
        ensure_proposal_schema(store)
        by_change: dict[str, list[AuditEntry]] = defaultdict(list)
        details: list[tuple[int, Mapping[str, Any]]] = []
        for e in log.entries():
            if e.change_id:
                by_change[e.change_id].append(e)
            details.append((e.id, e.details))
        modes: dict[str, int] = {}
        for suffix in ("", "-wal", "-shm") if store.backend == "sqlite" else ():
            path = f"{store.path}{suffix}"
            try:
                modes[path] = stat.S_IMODE(os.stat(path).st_mode)
            except FileNotFoundError:
                continue
        # The chain, the genome file's anchor, the proposals' bindings and (given the
        # allowed-signers file) the decisions' signatures.
        verified = verify_integrity(
            store, key, genome_file, allowed_signers, strict_signatures=allowed_signers is not None
        )
        return cls(
            verify=verified,
            proposals=tuple(ProposalRepo(store.conn).list()),
            entries={k: tuple(v) for k, v in by_change.items()},
            all_details=tuple(details),
            store_modes=modes,
            db_access=None if store.backend == "sqlite" else _db_access(store),
            config=config,
            genome_file=None if genome_file is None else read_genomes(genome_file),
        )

    def events(self, p: Proposal, event_type: str) -> list[AuditEntry]:
        return [e for e in self.entries.get(p.id, ()) if e.event_type == event_type]


def read_genomes(path: Path) -> GenomeFile:
    """The genome file as the controls compare it: (path, genes per module or None when
    it is missing or unreadable, the error text)."""
    from pytest_rafael.genome.file import load_genome_file

    if not path.exists():
        return str(path), None, None
    try:
        return str(path), {m: g.genes_dict() for m, g in load_genome_file(path).items()}, None
    except (OSError, ValueError) as exc:
        return str(path), None, str(exc).splitlines()[0]


def _limited(problems: list[str]) -> list[str]:
    more = len(problems) - _SHOW
    return problems[:_SHOW] + ([f"... and {more} more"] if more > 0 else [])


def _db_access(store: Store) -> tuple[str, ...]:
    """What is wrong with a PostgreSQL store's protection of the audit rows."""
    problems = []
    row = store.conn.execute(
        "SELECT tgenabled FROM pg_trigger WHERE tgname = 'audit_append_only'"
        " AND tgrelid = 'audit'::regclass"
    ).fetchone()
    if row is None or row[0] == "D":
        problems.append("the audit table's append-only trigger is missing or disabled")
    for privilege in ("SELECT", "INSERT", "UPDATE", "DELETE"):
        granted = store.conn.execute(
            "SELECT has_table_privilege('public', 'audit', ?)", (privilege,)
        ).fetchone()[0]
        if granted:
            problems.append(f"PUBLIC (every database role) holds {privilege} on the audit table")
    return tuple(problems)
