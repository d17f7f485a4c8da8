"""Adoption proposals and their approvals, stored in the rafael store."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from pytest_rafael.errors import RafaelError
from pytest_rafael.guardian.config import GuardianConfig
from pytest_rafael.guardian.policy import Approval, Requirement, evidence_passes

STATUSES: tuple[str, ...] = ("pending", "approved", "rejected", "adopted", "superseded")

SCHEMA = """
CREATE TABLE IF NOT EXISTS proposals (
    id              TEXT PRIMARY KEY,
    module          TEXT NOT NULL,
    impact          TEXT NOT NULL,
    reasons         TEXT NOT NULL,
    status          TEXT NOT NULL,
    author          TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    decided_at      TEXT,
    decision_reason TEXT,
    run_id          TEXT,
    baseline        TEXT,
    candidate       TEXT NOT NULL,
    evidence        TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS proposals_module ON proposals (module, status);
CREATE TABLE IF NOT EXISTS approvals (
    proposal_id TEXT NOT NULL REFERENCES proposals(id),
    approver    TEXT NOT NULL,
    role        TEXT,
    reason      TEXT NOT NULL,
    at          TEXT NOT NULL,
    fingerprint TEXT,
    signature   TEXT,
    PRIMARY KEY (proposal_id, approver)
);
"""

# Columns added after the first release: (table, column, declaration).
MIGRATIONS: tuple[tuple[str, str, str], ...] = (
    ("approvals", "fingerprint", "TEXT"),
    ("approvals", "signature", "TEXT"),
)


def ensure_proposal_schema(store: Any) -> None:
    store.ensure_schema(SCHEMA)
    for table, column, decl in MIGRATIONS:
        store.add_column(table, column, decl)


def evidence_digest(evidence: Mapping[str, Any]) -> dict[str, Any]:
    """What the audit keeps of the evidence: which tests and scores, not their output."""
    tests = evidence.get("tests") or []
    return {
        "run_id": evidence.get("run_id"),
        "tests": [
            {
                k: t.get(k)
                for k in (
                    "nodeid",
                    "scenario",
                    "severity",
                    "baseline_fitness",
                    "best_fitness",
                    "success_rate",
                    "iterations",
                )
            }
            for t in tests
            if isinstance(t, Mapping)
        ],
    }


def sha256_json(value: Any) -> str | None:
    """SHA-256 of the canonical JSON of ``value`` (None for None)."""
    if value is None:
        return None
    from pytest_rafael.guardian.audit_hash import canonical_json, jsonable

    return hashlib.sha256(canonical_json(jsonable(value)).encode("utf-8")).hexdigest()


def binding(
    proposal_id: str,
    module: str,
    impact: str,
    candidate: Mapping[str, Any],
    baseline: Mapping[str, Any] | None,
    evidence: Mapping[str, Any],
) -> dict[str, Any]:
    """What a proposal is bound to: recorded in its ``proposal_created`` entry and
    covered by every signed decision. The evidence is digested as an opaque mapping."""
    from pytest_rafael.guardian.audit_hash import jsonable

    return {
        "proposal": proposal_id,
        "module": module,
        "candidate": jsonable(dict(candidate)),
        "baseline_sha256": sha256_json(None if baseline is None else dict(baseline)),
        "evidence_sha256": sha256_json(dict(evidence)),
        "impact": impact,
    }


def binding_of(p: Proposal) -> dict[str, Any]:
    return binding(p.id, p.module, p.impact, p.candidate, p.baseline, p.evidence)


def binding_differences(recorded: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """Which bound fields differ ("candidate", "evidence", ...), in a fixed order."""
    names = {
        "proposal": "id",
        "module": "module",
        "candidate": "candidate",
        "baseline_sha256": "baseline",
        "evidence_sha256": "evidence",
        "impact": "impact",
    }
    return [name for key, name in names.items() if recorded.get(key) != current.get(key)]


class ProposalNotFound(RafaelError, LookupError):
    """No proposal has that id (or the prefix is ambiguous)."""


def _frozen(d: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    return None if d is None else MappingProxyType(dict(d))


@dataclass(frozen=True)
class Proposal:
    id: str
    module: str
    impact: str
    reasons: tuple[str, ...]
    status: str
    approvals: tuple[Approval, ...]
    author: str
    created_at: str
    candidate: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    baseline: Mapping[str, Any] | None = None
    evidence: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    run_id: str | None = None
    decided_at: str | None = None
    decision_reason: str | None = None

    def summary(self) -> dict[str, Any]:
        """The part results.json and the report show."""
        return {
            "id": self.id,
            "module": self.module,
            "impact": self.impact,
            "status": self.status,
            "reasons": list(self.reasons),
            "approvals": [a.to_dict() for a in self.approvals],
            "author": self.author,
            "created_at": self.created_at,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.summary(),
            "run_id": self.run_id,
            "decided_at": self.decided_at,
            "decision_reason": self.decision_reason,
            "baseline": None if self.baseline is None else dict(self.baseline),
            "candidate": dict(self.candidate),
            "evidence": dict(self.evidence),
        }


def _loads(text: Any, default: Any) -> Any:
    # Rows may have been edited by hand; an unparsable field reads as absent and the
    # compliance checks then report the missing evidence.
    try:
        return json.loads(text) if text is not None else default
    except (TypeError, ValueError):
        return default


class ProposalRepo:
    """Reads and writes proposals on a connection (inside the caller's transaction)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self._signed_columns: bool | None = None

    def insert(self, p: Proposal) -> None:
        self.conn.execute(
            "INSERT INTO proposals (id, module, impact, reasons, status, author, created_at,"
            " run_id, baseline, candidate, evidence) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (
                p.id,
                p.module,
                p.impact,
                json.dumps(list(p.reasons)),
                p.status,
                p.author,
                p.created_at,
                p.run_id,
                None if p.baseline is None else json.dumps(dict(p.baseline), sort_keys=True),
                json.dumps(dict(p.candidate), sort_keys=True),
                json.dumps(dict(p.evidence), sort_keys=True, default=str),
            ),
        )

    def add_approval(self, proposal_id: str, a: Approval) -> None:
        self.conn.execute(
            "INSERT INTO approvals (proposal_id, approver, role, reason, at, fingerprint,"
            " signature) VALUES (?,?,?,?,?,?,?)",
            (proposal_id, a.by, a.role, a.reason, a.at, a.fingerprint, a.signature),
        )

    def set_status(self, proposal_id: str, status: str, at: str, reason: str | None) -> None:
        self.conn.execute(
            "UPDATE proposals SET status = ?, decided_at = ?, decision_reason = ? WHERE id = ?",
            (status, at, reason, proposal_id),
        )

    def resolve_id(self, ident: str) -> str:
        """An exact id, or a unique prefix of at least 4 characters."""
        row = self.conn.execute("SELECT id FROM proposals WHERE id = ?", (ident,)).fetchone()
        if row:
            return str(row[0])
        if len(ident) >= 4:
            escaped = ident.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            rows = self.conn.execute(
                "SELECT id FROM proposals WHERE id LIKE ? ESCAPE '\\' LIMIT 2", (escaped + "%",)
            ).fetchall()
            if len(rows) == 1:
                return str(rows[0][0])
            if len(rows) > 1:
                raise ProposalNotFound(f"proposal id prefix {ident!r} is ambiguous")
        raise ProposalNotFound(f"no proposal with id {ident!r} (see 'rafael genome proposals')")

    def get(self, ident: str) -> Proposal:
        pid = self.resolve_id(ident)
        row = self.conn.execute("SELECT * FROM proposals WHERE id = ?", (pid,)).fetchone()
        return self._from_row(row)

    def list(self, status: str | None = None, module: str | None = None) -> list[Proposal]:
        sql, params = "SELECT * FROM proposals", []
        where = []
        if status:
            where.append("status = ?")
            params.append(status)
        if module:
            where.append("module = ?")
            params.append(module)
        if where:
            sql += " WHERE " + " AND ".join(where)
        rows = self.conn.execute(sql + " ORDER BY created_at, rowid", params).fetchall()
        return [self._from_row(r) for r in rows]

    def approvals(self, proposal_id: str) -> tuple[Approval, ...]:
        if self._signed_columns is None:
            from pytest_rafael.store.core import table_columns

            names = table_columns(self.conn, "approvals")
            self._signed_columns = {"fingerprint", "signature"} <= names
        # A read-only store from an older version has no signature columns: its
        # approvals read as unsigned.
        extra = ", fingerprint, signature" if self._signed_columns else ", NULL, NULL"
        rows = self.conn.execute(
            f"SELECT approver, role, reason, at{extra} FROM approvals WHERE proposal_id = ?"
            " ORDER BY at, rowid",
            (proposal_id,),
        ).fetchall()
        return tuple(
            Approval(
                str(r[0]),
                r[1],
                str(r[2]),
                str(r[3]),
                None if r[4] is None else str(r[4]),
                None if r[5] is None else str(r[5]),
            )
            for r in rows
        )

    def _from_row(self, row: sqlite3.Row) -> Proposal:
        reasons = _loads(row["reasons"], [])
        baseline = _loads(row["baseline"], None)
        candidate = _loads(row["candidate"], {})
        evidence = _loads(row["evidence"], {})
        return Proposal(
            id=str(row["id"]),
            module=str(row["module"]),
            impact=str(row["impact"]),
            reasons=tuple(str(r) for r in reasons) if isinstance(reasons, list) else (),
            status=str(row["status"]),
            approvals=self.approvals(str(row["id"])),
            author=str(row["author"]),
            created_at=str(row["created_at"]),
            candidate=_frozen(candidate if isinstance(candidate, dict) else {}) or {},
            baseline=_frozen(baseline if isinstance(baseline, dict) else None),
            evidence=_frozen(evidence if isinstance(evidence, dict) else {}) or {},
            run_id=row["run_id"],
            decided_at=row["decided_at"],
            decision_reason=row["decision_reason"],
        )


def pending_to_keep(
    repo: ProposalRepo, proposal: Proposal, req: Requirement, config: GuardianConfig
) -> Proposal | None:
    """A pending proposal to keep instead of filing ``proposal``: the very same change
    (candidate and baseline) at the same impact, with approvals gathered, and only
    approvals missing (its evidence meets what the policy asks of evidence). Anything
    else is replaced by the fresh evidence, as a different candidate is."""

    def change(p: Proposal) -> tuple[str | None, str | None]:
        base = None if p.baseline is None else dict(p.baseline)
        return sha256_json(dict(p.candidate)), sha256_json(base)

    want = change(proposal)
    for old in repo.list(status="pending", module=proposal.module):
        if change(old) != want or old.impact != proposal.impact or not old.approvals:
            continue
        if req.needs_passing_evidence and not evidence_passes(old.evidence, config)[0]:
            continue
        return old
    return None
