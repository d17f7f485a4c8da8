"""The Guardian: every genome adoption goes through here.

``propose`` assesses impact, stores the proposal and audits it; the approval policy
decides whether it can be adopted now (low impact, by default) or waits for people
(``approve``/``reject``). Adoption writes the genome file atomically while holding the
store's write lock, in the same transaction as the status change and its audit entries,
so the file, the proposal and the chain never disagree about what was adopted.
"""

from __future__ import annotations

import hashlib
import sqlite3
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pytest_rafael.guardian.actor import resolve_actor, same_actor
from pytest_rafael.guardian.audit import (
    AuditEntry,
    AuditLog,
    NewEntry,
    audit_key_from_env,
    jsonable,
)
from pytest_rafael.guardian.config import GuardianConfig, load_guardian_config
from pytest_rafael.guardian.impact import assess_impact
from pytest_rafael.guardian.notify import Notifier, WebhookNotifier, fan_out
from pytest_rafael.guardian.policy import (
    Approval,
    PolicyError,
    check_approver,
    requirement,
    unmet,
)
from pytest_rafael.guardian.proposals import SCHEMA, Proposal, ProposalRepo, evidence_digest
from pytest_rafael.store import Store


class GuardianError(Exception):
    """Bad input to the guardian (unknown proposal, invalid genome, unreadable file)."""


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


@dataclass
class Guardian:
    store: Store
    project_root: Path
    genome_file: Path
    actor: str
    config: GuardianConfig
    audit: AuditLog
    notifiers: tuple[Notifier, ...] = ()
    # Proposals made through this instance: the run's part of summary().
    session_ids: list[str] = field(default_factory=list)

    @classmethod
    def open(
        cls,
        store: Store,
        project_root: Path,
        genome_file: Path,
        actor: str | None = None,
        notify: Callable[[dict[str, Any]], None] | None = None,
        config: GuardianConfig | None = None,
    ) -> Guardian:
        cfg = config if config is not None else load_guardian_config(Path(project_root))
        notifiers: list[Notifier] = [notify] if notify is not None else []
        if cfg.webhook_url:
            notifiers.append(WebhookNotifier(cfg.webhook_url, cfg.webhook_timeout))
        store.ensure_schema(SCHEMA)
        genome_path = Path(genome_file)
        if not genome_path.is_absolute():
            genome_path = Path(project_root) / genome_path
        return cls(
            store=store,
            project_root=Path(project_root),
            genome_file=genome_path,
            actor=resolve_actor(actor),
            config=cfg,
            audit=AuditLog(store, audit_key_from_env()),
            notifiers=tuple(notifiers),
        )

    # -- audit ----------------------------------------------------------------------

    def record(
        self,
        event_type: str,
        module: str | None = None,
        change_id: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> AuditEntry:
        """Append one audit entry as this guardian's actor (one durable commit)."""
        return self.audit.append(event_type, self.actor, module, change_id, details)

    def record_many(self, events: Iterable[Mapping[str, Any]]) -> list[AuditEntry]:
        """Append several entries (``{event_type, module?, change_id?, details?}``) in one
        commit: what the plugin uses for per-test fault summaries at session end."""
        return self.audit.append_many(
            NewEntry(
                str(e["event_type"]),
                self.actor,
                e.get("module"),
                e.get("change_id"),
                e.get("details"),
            )
            for e in events
        )

    # -- proposals ------------------------------------------------------------------

    def propose(
        self,
        module: str,
        baseline: Mapping[str, Any] | None,
        candidate: Mapping[str, Any],
        evidence: Mapping[str, Any],
    ) -> Proposal:
        evidence = jsonable(dict(evidence))
        candidate_d = _validated(module, candidate, "candidate")
        baseline_d = None if baseline is None else _validated(module, baseline, "baseline")
        impact = assess_impact(module, baseline_d, candidate_d, evidence, self.config)
        req = requirement(impact.level, module, self.config)
        proposal = Proposal(
            id=uuid.uuid4().hex[:12],
            module=module,
            impact=impact.level,
            reasons=impact.reasons,
            status="pending",
            approvals=(),
            author=self.actor,
            created_at=_now(),
            candidate=candidate_d,
            baseline=baseline_d,
            evidence=dict(evidence),
            run_id=None if evidence.get("run_id") is None else str(evidence.get("run_id")),
        )
        events: list[AuditEntry] = []
        with self.store.transaction() as conn:
            repo = ProposalRepo(conn)
            # One open question per module: a newer candidate replaces the pending ones,
            # so reviewers never approve a genome that evolution has already moved past.
            for old in repo.list(status="pending", module=module):
                repo.set_status(old.id, "superseded", _now(), f"superseded by {proposal.id}")
                events += self.audit.append_in(
                    conn,
                    [NewEntry("proposal_superseded", self.actor, module, old.id,
                              {"superseded_by": proposal.id})],
                )
            repo.insert(proposal)
            events += self.audit.append_in(
                conn,
                [
                    NewEntry(
                        "proposal_created",
                        self.actor,
                        module,
                        proposal.id,
                        {
                            "impact": impact.level,
                            "reasons": list(impact.reasons),
                            "requires": req.describe(),
                            "changes": _changes(module, baseline_d, candidate_d),
                            "evidence": evidence_digest(evidence),
                        },
                    )
                ],
            )
            if not unmet(req, (), self.actor, evidence, self.config):
                try:
                    events += self._adopt(conn, proposal, self.actor, auto=True)
                except (PolicyError, GuardianError) as exc:
                    # Nothing was written yet; the proposal stays pending for a person
                    # to look at, and the run goes on.
                    events += self.audit.append_in(
                        conn,
                        [
                            NewEntry(
                                "adoption_deferred",
                                self.actor,
                                module,
                                proposal.id,
                                {"reason": str(exc)},
                            )
                        ],
                    )
            final = repo.get(proposal.id)
        self.session_ids.append(proposal.id)
        self._notify(events, final)
        return final

    def approve(
        self, change_id: str, by: str, role: str | None = None, reason: str = ""
    ) -> Proposal:
        """Record ``by``'s approval; adopt once the policy is satisfied.

        Raises :class:`PolicyError` for refusals (the author approving, a repeated
        approver, a claimed role the approver does not hold, a decided proposal)."""
        events: list[AuditEntry] = []
        with self.store.transaction() as conn:
            repo = ProposalRepo(conn)
            p = self._get(repo, change_id)
            if p.status != "pending":
                raise PolicyError(f"proposal {p.id} is already {p.status}")
            check_approver(
                author=p.author, by=by, role=role, existing=p.approvals, config=self.config
            )
            approval = Approval(by.strip(), (role or "").strip() or None, reason.strip(), _now())
            repo.add_approval(p.id, approval)
            details: dict[str, Any] = {"role": approval.role, "reason": approval.reason}
            if not same_actor(self.actor, approval.by):
                details["recorded_by"] = self.actor
            events += self.audit.append_in(
                conn, [NewEntry("approval_recorded", approval.by, p.module, p.id, details)]
            )
            p = repo.get(p.id)
            req = requirement(p.impact, p.module, self.config)
            missing = unmet(req, p.approvals, p.author, p.evidence, self.config)
            if not missing:
                events += self._adopt(conn, p, approval.by, auto=False)
            p = repo.get(p.id)
        self._notify(events, p)
        return p

    def reject(self, change_id: str, by: str, reason: str) -> Proposal:
        """Reject a pending proposal. The genome file is never touched. The author may
        withdraw their own proposal (rejecting needs no separation of duties)."""
        if not by.strip():
            raise PolicyError("a name is required (--by)")
        if not reason.strip():
            raise PolicyError("a reason is required to reject (--reason)")
        with self.store.transaction() as conn:
            repo = ProposalRepo(conn)
            p = self._get(repo, change_id)
            if p.status != "pending":
                raise PolicyError(f"proposal {p.id} is already {p.status}")
            now = _now()
            repo.set_status(p.id, "rejected", now, reason.strip())
            details: dict[str, Any] = {"reason": reason.strip()}
            if same_actor(by, p.author):
                details["withdrawn_by_author"] = True
            if not same_actor(self.actor, by):
                details["recorded_by"] = self.actor
            events = self.audit.append_in(
                conn, [NewEntry("proposal_rejected", by.strip(), p.module, p.id, details)]
            )
            p = repo.get(p.id)
        self._notify(events, p)
        return p

    def proposals(self, status: str | None = None, module: str | None = None) -> list[Proposal]:
        return ProposalRepo(self.store.conn).list(status, module)

    def get(self, change_id: str) -> Proposal:
        return self._get(ProposalRepo(self.store.conn), change_id)

    def pending_requirements(self, p: Proposal) -> list[str]:
        req = requirement(p.impact, p.module, self.config)
        return unmet(req, p.approvals, p.author, p.evidence, self.config)

    # -- reporting ------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        """For results.json and the report: this session's proposals and the chain state."""
        repo = ProposalRepo(self.store.conn)
        proposals = [repo.get(pid).summary() for pid in self.session_ids]
        result = self.audit.verify()
        return {
            "proposals": [
                {k: p[k] for k in ("id", "module", "impact", "status", "reasons", "approvals")}
                for p in proposals
            ],
            "audit": {
                "entries": result.entries,
                "verified": result.ok,
                "first_broken": result.first_broken,
                "reason": result.reason,
                "hmac": result.hmac_checked,
            },
        }

    # -- internals ------------------------------------------------------------------

    def _get(self, repo: ProposalRepo, change_id: str) -> Proposal:
        from pytest_rafael.guardian.proposals import ProposalNotFound

        try:
            return repo.get(change_id)
        except ProposalNotFound as exc:
            raise GuardianError(str(exc)) from None

    def _adopt(
        self, conn: sqlite3.Connection, p: Proposal, actor: str, auto: bool
    ) -> list[AuditEntry]:
        """Write the genome file and mark ``p`` adopted; caller holds the transaction, so
        a failure here rolls the approval back and the file is either old or new."""
        req = requirement(p.impact, p.module, self.config)
        path, digest = _write_genome(self.genome_file, p)
        now = _now()
        ProposalRepo(conn).set_status(p.id, "adopted", now, "auto-approved" if auto else None)
        approved: dict[str, Any] = {"impact": p.impact, "policy": req.describe()}
        if auto:
            approved["auto"] = True
        else:
            approved["approvers"] = [a.by for a in ProposalRepo(conn).approvals(p.id)]
        generation = p.candidate.get("generation")
        return self.audit.append_in(
            conn,
            [
                NewEntry("proposal_approved", actor, p.module, p.id, approved),
                NewEntry("genome_adopted", actor, p.module, p.id, {"generation": generation}),
                NewEntry(
                    "genome_file_written",
                    actor,
                    p.module,
                    p.id,
                    {"path": _display(path, self.project_root), "sha256": digest},
                ),
            ],
        )

    def _notify(self, entries: list[AuditEntry], p: Proposal) -> None:
        if not self.notifiers:
            return
        for e in entries:
            if e.event_type == "genome_file_written":
                continue
            fan_out(
                self.notifiers,
                {
                    "event_type": e.event_type,
                    "change_id": p.id,
                    "module": p.module,
                    "impact": p.impact,
                    "status": p.status,
                    "actor": e.actor,
                    "details": dict(e.details),
                    "audit_id": e.id,
                    "timestamp": e.timestamp,
                },
            )


def _display(path: Path, root: Path) -> str:
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)


def _validated(module: str, genome: Mapping[str, Any], what: str) -> dict[str, Any]:
    """Check a genome dict through the genome package; returns its canonical dict."""
    from pytest_rafael.genome.genome import Genome

    try:
        return Genome.from_dict(module, dict(genome)).to_dict()
    except ValueError as exc:  # GenomeError is a ValueError
        raise GuardianError(f"{what} genome: {exc}") from None


def _changes(
    module: str, baseline: Mapping[str, Any] | None, candidate: Mapping[str, Any]
) -> list[str]:
    from pytest_rafael.genome.genome import Genome

    new = Genome.from_dict(module, dict(candidate))
    old = Genome.from_dict(module, dict(baseline)) if baseline is not None else Genome(module)
    return old.diff(new)


def _write_genome(path: Path, p: Proposal) -> tuple[Path, str]:
    from pytest_rafael.genome.file import load_genome_file, write_genome_file
    from pytest_rafael.genome.genome import Genome

    try:
        genomes = dict(load_genome_file(path)) if path.exists() else {}
    except (OSError, ValueError) as exc:
        raise GuardianError(f"{path}: cannot read the genome file: {exc}") from None
    try:
        candidate = Genome.from_dict(p.module, dict(p.candidate))
        baseline = Genome.from_dict(p.module, dict(p.baseline)) if p.baseline else None
    except ValueError as exc:
        # Validated when proposed; failing now means the stored row was edited.
        raise GuardianError(f"proposal {p.id}: stored genome is invalid: {exc}") from None
    current = genomes.get(p.module)
    # Already holding the candidate is not a conflict: a process killed between the
    # file's rename and the store's commit leaves exactly that, and approving again
    # must then complete the adoption.
    if current is not None and current.genes_dict() != candidate.genes_dict():
        expected = baseline.genes_dict() if baseline is not None else None
        if current.genes_dict() != expected:
            # Someone adopted another genome for this module since the proposal was
            # made; writing ours would silently undo theirs.
            raise PolicyError(
                f"the genome of {p.module!r} in {path} changed since proposal {p.id} was made;"
                " re-run the chaos suite to propose again"
            )
    genomes[p.module] = candidate
    try:
        write_genome_file(path, genomes)
        data = path.read_bytes()
    except (OSError, ValueError) as exc:
        raise GuardianError(f"{path}: cannot write the genome file: {exc}") from None
    return path, hashlib.sha256(data).hexdigest()
