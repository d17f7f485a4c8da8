"""A person's decision on a proposal: what it is bound to, how it is signed and checked.

The guardian (:mod:`pytest_rafael.guardian.core`) calls these before it records an
approval or rejection: the store's log must be intact and hold the genome file's anchor;
the proposal must still match the binding its ``proposal_created`` entry recorded; the
decision must be signed by a key the allowed-signers file lists for the principal.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from pytest_rafael.guardian.actor import ActorError, check_name
from pytest_rafael.guardian.audit import AuditChainError, AuditLog
from pytest_rafael.guardian.policy import Approval, PolicyError
from pytest_rafael.guardian.proposals import (
    Proposal,
    ProposalRepo,
    binding_differences,
    binding_of,
)
from pytest_rafael.guardian.signatures import (
    SignatureError,
    Signer,
    decision_payload,
    require_allowed_signers,
    sign,
    verify,
)


class TamperedError(AuditChainError):
    """The store no longer holds what the log recorded (an edited proposal, a store
    rolled back behind the genome file's anchor): nothing is decided on it."""


def check_log(audit: AuditLog, genome_file: Path) -> None:
    """Refuse to decide on a store whose chain is broken or that no longer holds the
    entry the genome file is anchored to (truncated, or rolled back)."""
    from pytest_rafael.guardian.integrity import check_anchor

    result = audit.verify()
    if not result.ok:
        raise AuditChainError(
            f"the audit chain is broken at entry {result.first_broken}: {result.reason}; "
            "run 'rafael audit verify'"
        )
    _, why, _ = check_anchor(audit.store.conn, genome_file)
    if why is not None:
        raise TamperedError(f"{why}; refusing to decide on it")


def filed_binding(audit: AuditLog, p: Proposal) -> dict[str, Any]:
    """The binding ``p`` was filed with (from its ``proposal_created`` entry), after
    checking that the stored proposal still matches it."""
    filed = next(audit.entries(change_id=p.id, event_type="proposal_created"), None)
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


def filed_genome_file(audit: AuditLog, p: Proposal) -> str | None:
    """The genome file the run that filed ``p`` measured, relative to the project root
    (None for a proposal filed before proposals named it)."""
    filed = next(audit.entries(change_id=p.id, event_type="proposal_created"), None)
    recorded = None if filed is None else filed.details.get("genome_file")
    return recorded if isinstance(recorded, str) else None


def shown(p: Proposal) -> dict[str, Any]:
    """What results.json and the report show of a proposal."""
    summary = p.summary()
    return {k: summary[k] for k in ("id", "module", "impact", "status", "reasons", "approvals")}


def earlier_pending(
    audit: AuditLog,
    repo: ProposalRepo,
    genome_file: Path,
    root: Path,
    this_run: Sequence[str],
    limit: int = 20,
) -> list[Proposal]:
    """Proposals still waiting for a decision that earlier runs filed for this genome
    file, newest first: a run's report lists them too, so a proposal nobody decided on
    does not drop out of sight when the next run (or an interrupted one) replaces the
    report. Proposals filed for another genome file (another project sharing the store)
    are left out; one filed before proposals named their file is kept."""
    from pytest_rafael.guardian.adoption import display_path

    here = display_path(genome_file, root)
    mine = [
        p
        for p in repo.list("pending")
        if p.id not in this_run and filed_genome_file(audit, p) in (None, here)
    ]
    return list(reversed(mine))[:limit]


def check_genome_file(audit: AuditLog, p: Proposal, genome_file: Path, root: Path) -> None:
    """Refuse to adopt ``p`` into another genome file than the one the run that measured
    it used (its ``proposal_created`` entry names it, relative to the project root):
    ``rafael`` run from another folder than pytest resolves another ini, and the adopted
    genome would land in a file no test reads."""
    import os

    from pytest_rafael.guardian.adoption import display_path

    recorded = filed_genome_file(audit, p)
    if recorded is None:
        return  # filed before proposals named their genome file
    here = display_path(genome_file, root)
    if here != recorded:
        target = os.path.relpath(root / recorded)
        if target.startswith(".."):
            target = str((root / recorded).resolve())
        raise PolicyError(
            f"proposal {p.id} was filed for the genome file {recorded} (the one its run "
            f"measured), not {here}: approve it with --genome {target}"
        )


def signed_decision(
    allowed_signers: Path,
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

    require_allowed_signers(allowed_signers)
    if signature is None and key is None:
        raise SignatureError(
            f"a {'rejection' if decision == 'reject' else 'decision'} must be signed with "
            f"an SSH key listed in {allowed_signers} (--key PATH, or "
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
    signer = verify(payload, signature, allowed_signers, by)
    return signer, signature, at


def verified_approvals(
    allowed_signers: Path,
    approvals: tuple[Approval, ...],
    bound: Mapping[str, Any],
    fresh: Approval | None = None,
) -> list[Approval]:
    """The approvals whose signatures verify over ``bound``, by the key they name, at
    the time they were made (``fresh`` was verified a moment ago). Verified before they
    are counted, so a forged row cannot crowd out a genuine one."""
    out: list[Approval] = []
    for a in approvals:
        if fresh is not None and a == fresh:
            out.append(a)
            continue
        if not a.signed:
            continue
        assert a.signature is not None
        payload = decision_payload("approve", bound, a.by, a.role, a.reason, a.at)
        try:
            signer = verify(payload, a.signature, allowed_signers, a.by, a.at, all_principals=False)
        except SignatureError:
            continue
        if signer.fingerprint == a.fingerprint:
            out.append(a)
    return out


def clean_name(name: str, what: str) -> str:
    try:
        return check_name(name, what)
    except ActorError as exc:
        raise PolicyError(str(exc)) from None


def optional(role: str | None) -> str | None:
    return (role or "").strip() or None


def one_line(reason: str) -> str:
    """A reason is one line of text: control characters would garble the terminal, the
    exports and the signed payload's review."""
    reason = (reason or "").strip()
    for ch in reason:
        if unicodedata.category(ch) in ("Cc", "Cf") and ch != "\t":
            raise PolicyError(f"the reason holds a control character (U+{ord(ch):04X})")
    return reason
