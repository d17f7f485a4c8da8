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
import unicodedata
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pytest_rafael.guardian.actor import ActorError, check_name, resolve_actor, same_actor
from pytest_rafael.guardian.audit import (
    AuditChainError,
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
    counted,
    key_belongs_to,
    requirement,
    unmet,
)
from pytest_rafael.guardian.proposals import (
    Proposal,
    ProposalRepo,
    binding_differences,
    binding_of,
    ensure_proposal_schema,
    evidence_digest,
)
from pytest_rafael.guardian.signatures import (
    SignatureError,
    Signer,
    allowed_signers_path,
    decision_payload,
    require_allowed_signers,
    sign,
    signature_fingerprint,
    verify,
)
from pytest_rafael.store import Store


class GuardianError(Exception):
    """Bad input to the guardian (unknown proposal, invalid genome, unreadable file)."""


class TamperedError(AuditChainError):
    """The store no longer holds what the log recorded (an edited proposal, a store
    rolled back behind the genome file's anchor): nothing is decided on it."""


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
        candidate_d = _validated(module, candidate, "candidate")
        baseline_d = None if baseline is None else _validated(module, baseline, "baseline")
        impact = assess_impact(module, baseline_d, candidate_d, evidence, self.config)
        req = requirement(impact.level, module, self.config)
        proposal_id = uuid.uuid4().hex[:12]
        proposal = Proposal(
            id=proposal_id,
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
                    [
                        NewEntry(
                            "proposal_superseded",
                            self.actor,
                            module,
                            old.id,
                            {"superseded_by": proposal.id},
                        )
                    ],
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
                            # What every signed decision on it covers; `audit verify`
                            # checks the proposal row against it.
                            "binding": binding_of(proposal),
                        },
                    )
                ],
            )
            if not unmet(req, (), self.actor, evidence, self.config):
                conn.execute("SAVEPOINT rafael_adopt")
                try:
                    adopted = self._adopt(conn, proposal, self.actor, auto=True)
                except (PolicyError, GuardianError, AuditChainError) as exc:
                    # Nothing was written; the proposal stays pending for a person to
                    # look at, and the run goes on.
                    conn.execute("ROLLBACK TO rafael_adopt")
                    conn.execute("RELEASE rafael_adopt")
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
                else:
                    conn.execute("RELEASE rafael_adopt")
                    events += adopted
            final = repo.get(proposal.id)
        self.session_ids.append(proposal.id)
        self._notify(events, final)
        return final

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
        return decision_payload(decision, bound, by.strip(), _opt(role), reason.strip(), at), at

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
        by, role, reason = _clean(by, "approver name"), _opt(role), _text(reason)
        self._check_log()
        p = self.get(change_id)
        if p.status != "pending":
            raise PolicyError(f"proposal {p.id} is already {p.status}")
        bound = self.filed_binding(p)
        # Refuse what names alone already rule out before asking anyone to sign.
        check_approver(author=p.author, by=by, role=role, existing=p.approvals, config=self.config)
        signer, signature, at = self._signed("approve", bound, by, role, reason, key, signature, at)
        events: list[AuditEntry] = []
        with self.store.transaction() as conn:
            repo = ProposalRepo(conn)
            p = self._get(repo, change_id)
            if p.status != "pending":
                raise PolicyError(f"proposal {p.id} is already {p.status}")
            if self.filed_binding(p) != bound:
                raise TamperedError(f"proposal {p.id} changed while it was being signed")
            check_approver(
                author=p.author,
                by=by,
                role=role,
                existing=p.approvals,
                config=self.config,
                fingerprint=signer.fingerprint,
                key_principals=signer.principals,
            )
            approval = Approval(by, role, reason, at, signer.fingerprint, signature)
            repo.add_approval(p.id, approval)
            details: dict[str, Any] = {
                "role": approval.role,
                "reason": approval.reason,
                "at": at,
                "fingerprint": signer.fingerprint,
                "principals": list(signer.principals),
                "signature": signature,
            }
            if not same_actor(self.actor, approval.by):
                details["recorded_by"] = self.actor
            events += self.audit.append_in(
                conn, [NewEntry("approval_recorded", approval.by, p.module, p.id, details)]
            )
            p = repo.get(p.id)
            req = requirement(p.impact, p.module, self.config)
            if not unmet(req, p.approvals, p.author, p.evidence, self.config):
                # Adopt only on approvals whose signatures verify now, over this very
                # binding: rows added to the store behind the guardian's back do not count.
                verified = self._verified(p.approvals, p.author, bound, approval)
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
        by, reason = _clean(by, "name"), _text(reason)
        self._check_log()
        p = self.get(change_id)
        if p.status != "pending":
            raise PolicyError(f"proposal {p.id} is already {p.status}")
        bound = self.filed_binding(p)
        signer, signature, at = self._signed("reject", bound, by, None, reason, key, signature, at)
        with self.store.transaction() as conn:
            repo = ProposalRepo(conn)
            p = self._get(repo, change_id)
            if p.status != "pending":
                raise PolicyError(f"proposal {p.id} is already {p.status}")
            if self.filed_binding(p) != bound:
                raise TamperedError(f"proposal {p.id} changed while it was being signed")
            repo.set_status(p.id, "rejected", _now(), reason)
            details: dict[str, Any] = {
                "reason": reason,
                "at": at,
                "fingerprint": signer.fingerprint,
                "principals": list(signer.principals),
                "signature": signature,
            }
            if same_actor(by, p.author) or key_belongs_to(signer.principals, p.author):
                details["withdrawn_by_author"] = True
            if not same_actor(self.actor, by):
                details["recorded_by"] = self.actor
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
        """For results.json and the report: this session's proposals and the chain state."""
        from pytest_rafael.guardian.integrity import verify_integrity

        repo = ProposalRepo(self.store.conn)
        proposals = [repo.get(pid).summary() for pid in self.session_ids]
        # Chain, genome-file anchor, bindings; signatures where ssh-keygen and the
        # allowed-signers file are at hand (a CI run that only proposes needs neither).
        result = verify_integrity(
            self.store,
            self.audit.key,
            self.genome_file,
            self.allowed_signers,
            strict_signatures=False,
        )
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
                # The last entry: keep it off the machine (results.json, the report)
                # to detect a later truncation of the log.
                "head": None if result.head is None else dict(result.head),
                "anchor": None if result.anchor is None else dict(result.anchor),
            },
        }

    # -- internals ------------------------------------------------------------------

    def _get(self, repo: ProposalRepo, change_id: str) -> Proposal:
        from pytest_rafael.guardian.proposals import ProposalNotFound

        try:
            return repo.get(change_id)
        except ProposalNotFound as exc:
            raise GuardianError(str(exc)) from None

    def _check_log(self) -> None:
        """Refuse to decide on a store whose chain is broken or that no longer holds the
        entry the genome file is anchored to (truncated, or rolled back)."""
        from pytest_rafael.guardian.integrity import check_anchor

        result = self.audit.verify()
        if not result.ok:
            raise AuditChainError(
                f"the audit chain is broken at entry {result.first_broken}: {result.reason}; "
                "run 'rafael audit verify'"
            )
        _, why, _ = check_anchor(self.store.conn, self.genome_file)
        if why is not None:
            raise TamperedError(f"{why}; refusing to decide on it")

    def filed_binding(self, p: Proposal) -> dict[str, Any]:
        """The binding ``p`` was filed with (from its ``proposal_created`` entry), after
        checking that the stored proposal still matches it."""
        filed = next(self.audit.entries(change_id=p.id, event_type="proposal_created"), None)
        recorded = None if filed is None else filed.details.get("binding")
        if not isinstance(recorded, Mapping):
            raise PolicyError(
                f"proposal {p.id} is not bound to the audit log (filed before signed "
                "decisions, or outside the guardian); re-run the chaos suite to file it again"
            )
        changed = binding_differences(recorded, binding_of(p))
        if changed:
            assert filed is not None
            raise TamperedError(
                f"proposal {p.id}: its stored {', '.join(changed)} differ(s) from what was "
                f"filed (audit entry {filed.id}); the store was edited, refusing "
                "(run 'rafael audit verify')"
            )
        return dict(recorded)

    def _signed(
        self,
        decision: str,
        bound: Mapping[str, Any],
        by: str,
        role: str | None,
        reason: str,
        key: str | Path | None,
        signature: str | None,
        at: str | None,
    ) -> tuple[Signer, str, str]:
        """Sign (with ``key``) or take ``signature``; verify it against the allowed
        signers for ``by``. Returns the signer, the signature and the signed time."""
        from pytest_rafael.guardian.signatures import now

        require_allowed_signers(self.allowed_signers)
        if signature is None and key is None:
            raise SignatureError(
                f"a {'rejection' if decision == 'reject' else 'decision'} must be signed with "
                f"an SSH key listed in {self.allowed_signers} (--key PATH, or "
                "RAFAEL_SIGNING_KEY); unsigned decisions are not recorded"
            )
        if signature is not None and at is None:
            raise SignatureError("a signature needs the time it was made over (at=...)")
        at = at or now()
        try:
            datetime.fromisoformat(at)
        except ValueError:
            raise SignatureError(f"bad decision time {at!r}") from None
        payload = decision_payload(decision, bound, by, role, reason, at)
        if signature is None:
            assert key is not None
            signature = sign(payload, Path(key))
        signer = verify(payload, signature, self.allowed_signers, by)
        return signer, signature, at

    def _verified(
        self,
        approvals: tuple[Approval, ...],
        author: str,
        bound: Mapping[str, Any],
        fresh: Approval,
    ) -> list[Approval]:
        """The counted approvals whose signatures verify over ``bound`` (``fresh`` was
        verified a moment ago)."""
        out: list[Approval] = []
        for a in counted(approvals, author):
            if a is fresh or a == fresh:
                out.append(a)
                continue
            assert a.signature is not None
            payload = decision_payload("approve", bound, a.by, a.role, a.reason, a.at)
            try:
                signer = verify(
                    payload, a.signature, self.allowed_signers, a.by, a.at, all_principals=False
                )
            except SignatureError:
                continue
            if signer.fingerprint == a.fingerprint == signature_fingerprint(a.signature):
                out.append(a)
        return out

    def _adopt(
        self, conn: sqlite3.Connection, p: Proposal, actor: str, auto: bool
    ) -> list[AuditEntry]:
        """Write the genome file and mark ``p`` adopted; caller holds the transaction, so
        a failure here rolls the approval back and the file is either old or new.

        The file carries the anchor: the id and hash of this adoption's
        ``genome_adopted`` entry."""
        from pytest_rafael.genome.file import AuditAnchor

        req = requirement(p.impact, p.module, self.config)
        genomes = _genomes_to_write(self.genome_file, p)
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
        path, digest = _write_genome(self.genome_file, genomes, anchor)
        return entries + self.audit.append_in(
            conn,
            [
                NewEntry(
                    "genome_file_written",
                    actor,
                    p.module,
                    p.id,
                    {
                        "path": _display(path, self.project_root),
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


def _genomes_to_write(path: Path, p: Proposal) -> dict[str, Any]:
    """The genomes the file will hold once ``p`` is adopted; refuses (PolicyError) when
    the module's genome in the file changed since ``p`` was proposed."""
    from pytest_rafael.genome.file import load_genome_file
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
    return genomes


def _write_genome(path: Path, genomes: Mapping[str, Any], anchor: Any) -> tuple[Path, str]:
    from pytest_rafael.genome.file import write_genome_file

    try:
        write_genome_file(path, genomes, anchor)
        data = path.read_bytes()
    except (OSError, ValueError) as exc:
        raise GuardianError(f"{path}: cannot write the genome file: {exc}") from None
    return path, hashlib.sha256(data).hexdigest()


def _clean(name: str, what: str) -> str:
    try:
        return check_name(name, what)
    except ActorError as exc:
        raise PolicyError(str(exc)) from None


def _opt(role: str | None) -> str | None:
    return (role or "").strip() or None


def _text(reason: str) -> str:
    """A reason is one line of text: control characters would garble the terminal, the
    exports and the signed payload's review."""
    reason = (reason or "").strip()
    for ch in reason:
        if unicodedata.category(ch) in ("Cc", "Cf") and ch != "\t":
            raise PolicyError(f"the reason holds a control character (U+{ord(ch):04X})")
    return reason
