"""Everything ``rafael audit verify`` checks beyond the hash chain itself.

1. **The chain** (:meth:`AuditLog.verify`): every entry's hash, the links, the head row,
   the HMAC under ``RAFAEL_AUDIT_KEY``.
2. **The anchor**: the genome file (kept in the repository) names an audit entry of the
   adoption that wrote it. A store whose chain does not contain that entry, with that
   hash, was truncated or rolled back to an older copy: detected with or without the key.
3. **Bindings**: each proposal row still holds the candidate, baseline, evidence and
   impact its ``proposal_created`` entry recorded when it was filed.
4. **Signatures**: each person's decision (``approval_recorded``, ``proposal_rejected``)
   carries an ``sshsig`` signature over its proposal's binding, made by a key the
   allowed-signers file lists for the recorded name; the approval rows agree with them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_rafael.guardian.audit import AuditEntry, AuditLog, VerifyResult
from pytest_rafael.store.core import Store

DECISION_EVENTS = {"approval_recorded": "approve", "proposal_rejected": "reject"}


@dataclass(frozen=True)
class IntegrityResult(VerifyResult):
    """:class:`VerifyResult` of the chain, extended with what else was checked."""

    head: Mapping[str, Any] | None = None  # {"id", "hash"} of the last entry
    # {"file", "entry", "hash", "status"}: status ok / missing / mismatch / no-anchor /
    # no-file / unreadable
    anchor: Mapping[str, Any] | None = None
    proposals_checked: int = 0
    signatures_checked: int = 0
    # Why signatures were not checked (no ssh-keygen, no allowed-signers file), if so.
    signatures_unchecked: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            **super().to_dict(),
            "head": None if self.head is None else dict(self.head),
            "anchor": None if self.anchor is None else dict(self.anchor),
            "proposals_checked": self.proposals_checked,
            "signatures_checked": self.signatures_checked,
            "signatures_unchecked": self.signatures_unchecked,
        }


def head_of(store: Store) -> dict[str, Any] | None:
    row = store.conn.execute("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1").fetchone()
    return None if row is None else {"id": int(row[0]), "hash": str(row[1])}


def check_anchor(
    conn: sqlite3.Connection, genome_file: Path | None
) -> tuple[dict[str, Any] | None, str | None, int | None]:
    """(anchor info, failure reason or None, entry id the failure is at)."""
    from pytest_rafael.genome.file import GenomeFileError, read_anchor

    if genome_file is None:
        return None, None, None
    info: dict[str, Any] = {"file": str(genome_file), "entry": None, "hash": None}
    if not Path(genome_file).exists():
        info["status"] = "no-file"
        return info, None, None
    try:
        anchor = read_anchor(genome_file)
    except GenomeFileError as exc:
        info["status"] = "unreadable"
        return info, str(exc), None
    if anchor is None:
        info["status"] = "no-anchor"
        return info, None, None
    info.update(entry=anchor.entry, hash=anchor.hash)
    row = conn.execute("SELECT hash FROM audit WHERE id = ?", (anchor.entry,)).fetchone()
    if row is None:
        info["status"] = "missing"
        return (
            info,
            (
                f"entry {anchor.entry}, anchored in {genome_file}, is not in the store: the audit "
                "log was truncated or the store rolled back to an older copy, or replaced by a "
                "new one (a lost CI cache): restore the store that adopted it"
            ),
            anchor.entry,
        )
    if str(row[0]) != anchor.hash:
        info["status"] = "mismatch"
        return (
            info,
            (
                f"entry {anchor.entry} does not match the anchor in {genome_file}: the store was "
                "replaced or rolled back to an older copy"
            ),
            anchor.entry,
        )
    info["status"] = "ok"
    return info, None, None


def audit_state(
    store: Store, key: bytes | None, genome_file: Path | None, allowed_signers: Path | None
) -> dict[str, Any]:
    """The chain's state for results.json and the report: the chain, the genome file's
    anchor and the bindings are verified; signatures where ssh-keygen and the
    allowed-signers file are at hand (a CI run that only proposes needs neither)."""
    result = verify_integrity(store, key, genome_file, allowed_signers, strict_signatures=False)
    return {
        "entries": result.entries,
        "verified": result.ok,
        "first_broken": result.first_broken,
        "reason": result.reason,
        "hmac": result.hmac_checked,
        # The last entry: keep it off the machine (results.json, the report) to detect a
        # later truncation of the log.
        "head": None if result.head is None else dict(result.head),
        "anchor": None if result.anchor is None else dict(result.anchor),
    }


def verify_integrity(
    store: Store,
    key: bytes | None,
    genome_file: Path | None = None,
    allowed_signers: Path | None = None,
    strict_signatures: bool = True,
) -> IntegrityResult:
    """Verify the chain, the genome file's anchor, the proposals' bindings and the
    decisions' signatures. ``strict_signatures``: a decision whose signature cannot be
    checked (no ssh-keygen, no allowed-signers file) fails verification; otherwise it is
    reported as unchecked."""
    from pytest_rafael.guardian.proposals import ensure_proposal_schema

    ensure_proposal_schema(store)
    log = AuditLog(store, key)  # creates its tables: a write, so before the snapshot
    # One snapshot for every read below: a shard filing a proposal (its row and its
    # proposal_created entry in one commit) between two reads would look like a
    # proposal added outside the log.
    with store.snapshot():
        return _verify_in_snapshot(store, log, genome_file, allowed_signers, strict_signatures)


def _verify_in_snapshot(
    store: Store,
    log: AuditLog,
    genome_file: Path | None,
    allowed_signers: Path | None,
    strict_signatures: bool,
) -> IntegrityResult:
    from pytest_rafael.guardian.proposals import ProposalRepo

    chain = log.verify()
    base = _from_chain(chain)
    head = head_of(store) if chain.entries else None
    if not chain.ok:
        return IntegrityResult(**base, head=head)
    anchor, why, at = check_anchor(store.conn, genome_file)
    if why is not None:
        return IntegrityResult(
            **{**base, "ok": False, "first_broken": at, "reason": why}, head=head, anchor=anchor
        )
    created, decisions = _filed_and_decided(log)
    proposals = ProposalRepo(store.conn).list()

    def broken(entry: int | None, reason: str, **extra: Any) -> IntegrityResult:
        return IntegrityResult(
            **{**base, "ok": False, "first_broken": entry, "reason": reason},
            head=head,
            anchor=anchor,
            **extra,
        )

    problem = _check_bindings(proposals, created)
    if problem is not None:
        return broken(*problem, proposals_checked=len(proposals))
    problem = _check_approval_rows(proposals, decisions)
    if problem is not None:
        return broken(*problem, proposals_checked=len(proposals))
    checked, unchecked, problem = _check_signatures(
        decisions, created, allowed_signers, strict_signatures
    )
    if problem is not None:
        return broken(*problem, proposals_checked=len(proposals), signatures_checked=checked)
    return IntegrityResult(
        **base,
        head=head,
        anchor=anchor,
        proposals_checked=len(proposals),
        signatures_checked=checked,
        signatures_unchecked=unchecked,
    )


def _filed_and_decided(log: AuditLog) -> tuple[dict[str, AuditEntry], list[AuditEntry]]:
    """The first proposal_created entry of each proposal, and every decision in order."""
    # Only the entries these checks read: parsing every entry's details would double
    # the cost of verifying a long log.
    created: dict[str, AuditEntry] = {}
    for e in log.entries(event_type="proposal_created"):
        if e.change_id and e.change_id not in created:
            created[e.change_id] = e
    decisions = sorted(
        (e for kind in DECISION_EVENTS for e in log.entries(event_type=kind) if e.change_id),
        key=lambda e: e.id,
    )
    return created, decisions


def _from_chain(v: VerifyResult) -> dict[str, Any]:
    return {
        "ok": v.ok,
        "entries": v.entries,
        "first_broken": v.first_broken,
        "reason": v.reason,
        "hmac_checked": v.hmac_checked,
        "unchecked_macs": v.unchecked_macs,
    }


def _check_bindings(
    proposals: Iterable[Any], created: Mapping[str, AuditEntry]
) -> tuple[int | None, str] | None:
    from pytest_rafael.guardian.proposals import binding_differences, binding_of

    for p in proposals:
        entry = created.get(p.id)
        if entry is None:
            return None, f"proposal {p.id} has no proposal_created entry (added outside the log)"
        recorded = entry.details.get("binding")
        if not isinstance(recorded, Mapping):
            return entry.id, (
                f"proposal {p.id} was filed without a binding (entry {entry.id}); its "
                "candidate cannot be checked"
            )
        if recorded.get("proposal") != entry.change_id or recorded.get("module") != entry.module:
            return entry.id, f"entry {entry.id}: the binding names another proposal"
        changed = binding_differences(recorded, binding_of(p))
        if changed:
            return entry.id, (
                f"proposal {p.id}: its stored {', '.join(changed)} differ(s) from what was "
                f"filed (entry {entry.id}); the store was edited"
            )
    return None


def _check_approval_rows(
    proposals: Iterable[Any], decisions: list[AuditEntry]
) -> tuple[int | None, str] | None:
    approvals = {
        (e.change_id, e.actor, e.details.get("fingerprint"))
        for e in decisions
        if e.event_type == "approval_recorded"
    }
    for p in proposals:
        for a in p.approvals:
            if (p.id, a.by, a.fingerprint) not in approvals:
                return None, (
                    f"proposal {p.id}: the approval by {a.by!r} has no matching signed "
                    "approval_recorded entry (added outside the log)"
                )
    return None


def _check_signatures(
    decisions: list[AuditEntry],
    created: Mapping[str, AuditEntry],
    allowed_signers: Path | None,
    strict: bool,
) -> tuple[int, str | None, tuple[int | None, str] | None]:
    if not decisions:
        return 0, None, None
    cannot = _why_unverifiable(allowed_signers)
    checked = 0
    for e in decisions:
        recorded = _recorded_decision(e, created)
        if isinstance(recorded, str):
            return checked, None, (e.id, recorded)
        signature, bound = recorded
        if cannot is not None:
            if strict:
                return (
                    checked,
                    None,
                    (e.id, f"cannot check the signature of entry {e.id}: {cannot}"),
                )
            continue
        assert allowed_signers is not None  # else `cannot` is set
        problem = _verify_decision(e, bound, signature, allowed_signers)
        if problem is not None:
            return checked, None, (e.id, problem)
        checked += 1
    return checked, (cannot if checked < len(decisions) else None), None


def _why_unverifiable(allowed_signers: Path | None) -> str | None:
    """Why signatures cannot be verified here (None: they can)."""
    from pytest_rafael.guardian.signatures import SignatureError, ssh_keygen

    if allowed_signers is None or not allowed_signers.is_file():
        return f"no allowed-signers file at {allowed_signers}"
    try:
        ssh_keygen()
    except SignatureError as exc:
        return str(exc)
    return None


def _recorded_decision(
    e: AuditEntry, created: Mapping[str, AuditEntry]
) -> tuple[str, Mapping[str, Any]] | str:
    """The decision's signature and the binding of the proposal it decides, or what is
    wrong with the entry (checked without ssh-keygen)."""
    from pytest_rafael.guardian.signatures import SignatureError, signature_fingerprint

    d = e.details
    signature = d.get("signature")
    if not isinstance(signature, str) or not signature:
        return f"entry {e.id}: the decision by {e.actor!r} is unsigned"
    filed = created.get(str(e.change_id))
    bound = None if filed is None else filed.details.get("binding")
    if not isinstance(bound, Mapping):
        return f"entry {e.id}: decides a proposal that was not filed"
    try:
        fp = signature_fingerprint(signature)
    except SignatureError as exc:
        return f"entry {e.id}: {exc}"
    if fp != d.get("fingerprint"):
        return f"entry {e.id}: the recorded key is not the signing key"
    return signature, bound


def _verify_decision(
    e: AuditEntry, bound: Mapping[str, Any], signature: str, allowed_signers: Path
) -> str | None:
    from pytest_rafael.guardian.signatures import SignatureError, decision_payload, verify

    d = e.details
    payload = decision_payload(
        DECISION_EVENTS[e.event_type],
        bound,
        e.actor,
        d.get("role"),
        str(d.get("reason") or ""),
        str(d.get("at") or ""),
    )
    try:
        verify(
            payload,
            signature,
            allowed_signers,
            e.actor,
            str(d.get("at") or "") or None,
            all_principals=False,
        )
    except SignatureError as exc:
        return f"entry {e.id}: {exc}"
    return None
