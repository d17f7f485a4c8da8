"""The Guardian: every genome adoption goes through here.

``propose`` assesses impact, stores the proposal and audits it; the approval policy
decides whether it can be adopted now (low impact, by default) or waits for people
(``approve``/``reject``). Adoption writes the genome file atomically while holding the
store's write lock, in the same transaction as the status change and its audit entries,
so the file, the proposal and the chain never disagree about what was adopted.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pytest_rafael.guardian.actor import ActorError, resolve_actor, same_actor
from pytest_rafael.guardian.adoption import (
    changes,
    display_path,
    genomes_to_write,
    validated,
    write_genome,
)
from pytest_rafael.guardian.audit import (
    AuditChainError,
    AuditEntry,
    AuditLog,
    NewEntry,
    audit_key_from_env,
)
from pytest_rafael.guardian.audit_hash import jsonable
from pytest_rafael.guardian.config import GuardianConfig, load_guardian_config
from pytest_rafael.guardian.decisions import (
    TamperedError,
    check_genome_file,
    check_log,
    clean_name,
    filed_binding,
    one_line,
    optional,
    signed_decision,
    verified_approvals,
)
from pytest_rafael.guardian.errors import GuardianError
from pytest_rafael.guardian.impact import assess_impact
from pytest_rafael.guardian.notify import Notifier, WebhookNotifier, fan_out, proposal_event
from pytest_rafael.guardian.policy import (
    Approval,
    PolicyError,
    check_approver,
    key_belongs_to,
    requirement,
    unmet,
)
from pytest_rafael.guardian.proposals import (
    Proposal,
    ProposalRepo,
    binding_of,
    ensure_proposal_schema,
    evidence_digest,
    pending_to_keep,
)
from pytest_rafael.guardian.signatures import Signer, allowed_signers_path, decision_payload
from pytest_rafael.guardian.signers_file import declared_roles
from pytest_rafael.store.core import Store

__all__ = ["Guardian", "GuardianError", "TamperedError"]


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
        try:
            who = resolve_actor(actor)
        except ActorError as exc:
            raise GuardianError(f"cannot record the acting identity: {exc}") from None
        notifiers: list[Notifier] = [notify] if notify is not None else []
        if cfg.webhook_url:
            notifiers.append(WebhookNotifier(cfg.webhook_url, cfg.webhook_timeout))
        ensure_proposal_schema(store)
        genome_path = Path(genome_file)
        if not genome_path.is_absolute():
            genome_path = Path(project_root) / genome_path
        return cls(
            store=store,
            project_root=Path(project_root),
            genome_file=genome_path,
            actor=who,
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
        candidate_d = validated(module, candidate, "candidate")
        baseline_d = None if baseline is None else validated(module, baseline, "baseline")
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
        created = {
            "impact": impact.level,
            "reasons": list(impact.reasons),
            "requires": req.describe(),
            "changes": changes(module, baseline_d, candidate_d),
            "evidence": evidence_digest(evidence),
            # What every signed decision on it covers; `audit verify` checks the
            # proposal row against it.
            "binding": binding_of(proposal),
            # The file an approval must write: see decisions.check_genome_file.
            "genome_file": display_path(self.genome_file, self.project_root),
        }
        with self.store.transaction() as conn:
            repo = ProposalRepo(conn)
            # The next CI run finds the same candidate again: refiling it would supersede
            # the pending one and throw away the approvals it gathered.
            final = pending_to_keep(repo, proposal, req, self.config)
            if final is not None:
                again = {"run_id": proposal.run_id, "evidence": evidence_digest(evidence)}
                events = self._log(conn, "proposal_reconfirmed", final, again)
            else:
                events = self._supersede_pending(conn, repo, proposal)
                repo.insert(proposal)
                events += self._log(conn, "proposal_created", proposal, created)
                if not unmet(req, (), self.actor, evidence, self.config):
                    events += self._auto_adopt(conn, proposal)
                final = repo.get(proposal.id)
        self.session_ids.append(final.id)
        self._notify(events, final)
        return final

    def _log(
        self, conn: sqlite3.Connection, event: str, p: Proposal, details: dict[str, Any]
    ) -> list[AuditEntry]:
        """One audit entry by this guardian's actor about ``p``, in ``conn``'s transaction."""
        return self.audit.append_in(conn, [NewEntry(event, self.actor, p.module, p.id, details)])

    def _supersede_pending(
        self, conn: sqlite3.Connection, repo: ProposalRepo, proposal: Proposal
    ) -> list[AuditEntry]:
        # One open question per module: a newer candidate replaces the pending ones, so
        # reviewers never approve a genome that evolution has already moved past.
        events: list[AuditEntry] = []
        for old in repo.list(status="pending", module=proposal.module):
            repo.set_status(old.id, "superseded", _now(), f"superseded by {proposal.id}")
            events += self._log(conn, "proposal_superseded", old, {"superseded_by": proposal.id})
        return events

    def _auto_adopt(self, conn: sqlite3.Connection, proposal: Proposal) -> list[AuditEntry]:
        """Adopt a proposal the policy lets through without a person; if adopting fails,
        nothing of it was written and the proposal stays pending, and the run goes on."""
        conn.execute("SAVEPOINT rafael_adopt")
        try:
            adopted = self._adopt(conn, proposal, self.actor, auto=True)
        except (PolicyError, GuardianError, AuditChainError) as exc:
            conn.execute("ROLLBACK TO rafael_adopt")
            conn.execute("RELEASE rafael_adopt")
            return self._log(conn, "adoption_deferred", proposal, {"reason": str(exc)})
        conn.execute("RELEASE rafael_adopt")
        return adopted

    @property
    def allowed_signers(self) -> Path:
        """The OpenSSH allowed-signers file decisions are verified against."""
        return allowed_signers_path(self.project_root, self.config.allowed_signers)

    def decision_payload(
        self,
        change_id: str,
        decision: str,
        by: str,
        role: str | None = None,
        reason: str = "",
        at: str | None = None,
    ) -> tuple[bytes, str]:
        """The bytes to sign for a decision on ``change_id`` and the time they carry
        (for signing elsewhere, e.g. with a hardware key: pass the result's signature
        and time to :meth:`approve` / :meth:`reject`)."""
        from pytest_rafael.guardian.signatures import now

        p = self.get(change_id)
        at = at or now()
        bound = self.filed_binding(p)
        return decision_payload(decision, bound, by.strip(), optional(role), reason.strip(), at), at

    def approve(
        self,
        change_id: str,
        by: str,
        role: str | None = None,
        reason: str = "",
        *,
        key: str | Path | None = None,
        signature: str | None = None,
        at: str | None = None,
    ) -> Proposal:
        """Record ``by``'s signed approval; adopt once the policy is satisfied.

        The approval is signed with the SSH key at ``key`` (or ``signature``, made over
        :meth:`decision_payload` at time ``at``) and must verify against the
        allowed-signers file for the principal ``by``. Raises :class:`PolicyError` for
        refusals (unsigned, an unlisted key, the author's key, a key that approved
        already, a claimed role the approver does not hold, a decided proposal) and
        :class:`~pytest_rafael.guardian.audit.AuditChainError` when the store no longer
        holds what the log recorded."""
        by, role, reason = clean_name(by, "approver name"), optional(role), one_line(reason)
        p, bound = self._pending(change_id)
        check_genome_file(self.audit, p, self.genome_file, self.project_root)
        # Refuse what names alone already rule out before asking anyone to sign.
        check_approver(author=p.author, by=by, role=role, existing=p.approvals, config=self.config)
        signer, signature, at = signed_decision(
            self.allowed_signers, "approve", bound, by, role, reason, key, signature, at
        )
        events: list[AuditEntry] = []
        with self.store.transaction() as conn:
            repo = ProposalRepo(conn)
            p = self._still_pending(repo, change_id, bound)
            check_approver(
                author=p.author,
                by=by,
                role=role,
                existing=p.approvals,
                config=self.config,
                fingerprint=signer.fingerprint,
                key_principals=signer.principals,
                key_roles=signer.roles,
                file_roles=declared_roles(self.allowed_signers),
            )
            approval = Approval(by, role, reason, at, signer.fingerprint, signature)
            repo.add_approval(p.id, approval)
            details = self._signed_details(by, signer, signature, at, role=role, reason=reason)
            events += self.audit.append_in(
                conn, [NewEntry("approval_recorded", approval.by, p.module, p.id, details)]
            )
            p = repo.get(p.id)
            req = requirement(p.impact, p.module, self.config)
            if not unmet(req, p.approvals, p.author, p.evidence, self.config):
                # Adopt only on approvals whose signatures verify now, over this very
                # binding: rows added to the store behind the guardian's back do not count.
                verified = verified_approvals(self.allowed_signers, p.approvals, bound, approval)
                if not unmet(req, verified, p.author, p.evidence, self.config):
                    events += self._adopt(conn, p, approval.by, auto=False)
            p = repo.get(p.id)
        self._notify(events, p)
        return p

    def reject(
        self,
        change_id: str,
        by: str,
        reason: str,
        *,
        key: str | Path | None = None,
        signature: str | None = None,
        at: str | None = None,
    ) -> Proposal:
        """Reject a pending proposal, signed like an approval. The genome file is never
        touched. The author may withdraw (reject) their own proposal."""
        if not by.strip():
            raise PolicyError("a name is required (--by)")
        if not reason.strip():
            raise PolicyError("a reason is required to reject (--reason)")
        by, reason = clean_name(by, "name"), one_line(reason)
        p, bound = self._pending(change_id)
        signer, signature, at = signed_decision(
            self.allowed_signers, "reject", bound, by, None, reason, key, signature, at
        )
        with self.store.transaction() as conn:
            repo = ProposalRepo(conn)
            p = self._still_pending(repo, change_id, bound)
            repo.set_status(p.id, "rejected", _now(), reason)
            details = self._signed_details(by, signer, signature, at, reason=reason)
            if same_actor(by, p.author) or key_belongs_to(signer.principals, p.author):
                details["withdrawn_by_author"] = True
            events = self.audit.append_in(
                conn, [NewEntry("proposal_rejected", by, p.module, p.id, details)]
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
        """For results.json and the report: this session's proposals, those earlier runs
        filed that still wait for a decision, and the chain state."""
        from pytest_rafael.guardian.decisions import earlier_pending, shown
        from pytest_rafael.guardian.integrity import audit_state

        repo = ProposalRepo(self.store.conn)
        here = (self.genome_file, self.project_root)
        return {
            "proposals": [shown(repo.get(pid)) for pid in self.session_ids],
            "earlier_pending": [
                shown(p) for p in earlier_pending(self.audit, repo, *here, self.session_ids)
            ],
            "audit": audit_state(
                self.store, self.audit.key, self.genome_file, self.allowed_signers
            ),
        }

    # -- internals ------------------------------------------------------------------

    def _get(self, repo: ProposalRepo, change_id: str) -> Proposal:
        from pytest_rafael.guardian.proposals import ProposalNotFound

        try:
            return repo.get(change_id)
        except ProposalNotFound as exc:
            raise GuardianError(str(exc)) from None

    def _pending(self, change_id: str) -> tuple[Proposal, dict[str, Any]]:
        """A pending proposal on an intact log, and the binding it was filed with."""
        check_log(self.audit, self.genome_file)
        p = self.get(change_id)
        if p.status != "pending":
            raise PolicyError(f"proposal {p.id} is already {p.status}")
        return p, self.filed_binding(p)

    def _still_pending(self, repo: ProposalRepo, change_id: str, bound: Any) -> Proposal:
        """Re-read inside the write transaction: nobody decided or edited it meanwhile."""
        p = self._get(repo, change_id)
        if p.status != "pending":
            raise PolicyError(f"proposal {p.id} is already {p.status}")
        if self.filed_binding(p) != bound:
            raise TamperedError(f"proposal {p.id} changed while it was being signed")
        return p

    def _signed_details(
        self, by: str, signer: Signer, signature: str, at: str, **fields: Any
    ) -> dict[str, Any]:
        """An audit entry's details for a signed decision (what verification needs)."""
        details: dict[str, Any] = {
            **fields,
            "at": at,
            "fingerprint": signer.fingerprint,
            "principals": list(signer.principals),
            "key_roles": list(signer.roles),
            "signature": signature,
        }
        if not same_actor(self.actor, by):
            details["recorded_by"] = self.actor
        return details

    def filed_binding(self, p: Proposal) -> dict[str, Any]:
        """The binding ``p`` was filed with (from its ``proposal_created`` entry), after
        checking that the stored proposal still matches it (:class:`TamperedError`)."""
        return filed_binding(self.audit, p)

    def _adopt(
        self, conn: sqlite3.Connection, p: Proposal, actor: str, auto: bool
    ) -> list[AuditEntry]:
        """Write the genome file and mark ``p`` adopted; caller holds the transaction, so
        a failure here rolls the approval back and the file is either old or new.

        The file carries the anchor: the id and hash of this adoption's
        ``genome_adopted`` entry."""
        from pytest_rafael.genome.file import AuditAnchor

        req = requirement(p.impact, p.module, self.config)
        genomes = genomes_to_write(self.genome_file, p)
        self._check_file_anchor(conn)
        now = _now()
        ProposalRepo(conn).set_status(p.id, "adopted", now, "auto-approved" if auto else None)
        approved: dict[str, Any] = {"impact": p.impact, "policy": req.describe()}
        if auto:
            approved["auto"] = True
        else:
            approvals = ProposalRepo(conn).approvals(p.id)
            approved["approvers"] = [a.by for a in approvals]
            approved["keys"] = [a.fingerprint for a in approvals]
        generation = p.candidate.get("generation")
        entries = self.audit.append_in(
            conn,
            [
                NewEntry("proposal_approved", actor, p.module, p.id, approved),
                NewEntry("genome_adopted", actor, p.module, p.id, {"generation": generation}),
            ],
        )
        anchor = AuditAnchor(entries[-1].id, entries[-1].hash, p.id)
        path, digest = write_genome(self.genome_file, genomes, anchor)
        return entries + self.audit.append_in(
            conn,
            [
                NewEntry(
                    "genome_file_written",
                    actor,
                    p.module,
                    p.id,
                    {
                        "path": display_path(path, self.project_root),
                        "sha256": digest,
                        "anchor": {"entry": anchor.entry, "hash": anchor.hash},
                    },
                ),
            ],
        )

    def _check_file_anchor(self, conn: sqlite3.Connection) -> None:
        """The genome file about to be rewritten names an audit entry this store must
        hold; otherwise the store was rolled back (or truncated) behind the file."""
        from pytest_rafael.guardian.integrity import check_anchor

        _, why, _ = check_anchor(conn, self.genome_file)
        if why is not None:
            raise TamperedError(f"{why}; refusing to adopt")

    def _notify(self, entries: list[AuditEntry], p: Proposal) -> None:
        for e in entries:
            if self.notifiers and e.event_type != "genome_file_written":
                fan_out(self.notifiers, proposal_event(e, p))
