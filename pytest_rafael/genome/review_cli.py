"""``rafael genome proposals|approve|reject``: review adoption proposals.

Every decision a person makes is signed with their SSH key (``--key``, else
``$RAFAEL_SIGNING_KEY``, git's ``user.signingkey``, ``~/.ssh/id_ed25519``) and verified
against the project's allowed-signers file before it is recorded.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pytest_rafael.cli import CommandError, resolve_settings
from pytest_rafael.guardian.actor import same_actor
from pytest_rafael.guardian.audit import AuditChainError
from pytest_rafael.guardian.cli_common import (
    add_genome_option,
    add_project_root_option,
    add_store_option,
    genome_path,
    given_genome,
    open_store,
    project_root,
)
from pytest_rafael.guardian.config import GuardianConfigError
from pytest_rafael.guardian.core import Guardian, GuardianError
from pytest_rafael.guardian.policy import PolicyError
from pytest_rafael.guardian.proposals import STATUSES, Proposal
from pytest_rafael.store.core import StoreError, store_label


def register(sub: argparse._SubParsersAction[Any], group: argparse.ArgumentParser) -> None:
    p = sub.add_parser("proposals", help="list adoption proposals (or show one by ID)")
    p.add_argument("id", nargs="?", help="a proposal id (or unique prefix) to show in full")
    p.add_argument("--status", choices=STATUSES, help="only proposals with this status")
    p.add_argument("--module", help="only proposals for this module")
    p.add_argument("--json", action="store_true", help="print JSON")
    add_store_option(p)
    add_genome_option(p)
    add_project_root_option(p)
    p.set_defaults(func=cmd_proposals)

    p = _decision_parser(sub, "approve", "approve a proposal; adopts it once the policy is met")
    p.add_argument("--role", metavar="ROLE", help="the approver's role (e.g. security-lead)")
    p.add_argument("--reason", default="", help="why")
    p.set_defaults(func=cmd_approve)

    p = _decision_parser(sub, "reject", "reject a proposal (the genome file is not touched)")
    p.add_argument("--reason", required=True, help="why")
    p.set_defaults(func=cmd_reject)


def _decision_parser(
    sub: argparse._SubParsersAction[Any], verb: str, text: str
) -> argparse.ArgumentParser:
    """The options a signed decision shares: which proposal, who, the key, where."""
    p: argparse.ArgumentParser = sub.add_parser(verb, help=text)
    p.add_argument("id", help="the proposal id (or a unique prefix)")
    p.add_argument(
        "--by",
        required=True,
        metavar="PRINCIPAL",
        help=f"who {verb}s: a principal the allowed-signers file lists for --key",
    )
    p.add_argument(
        "--key",
        metavar="PATH",
        help="SSH key to sign with (default: "
        "$RAFAEL_SIGNING_KEY, git's user.signingkey, ~/.ssh/id_ed25519)",
    )
    add_store_option(p)
    add_genome_option(p)
    add_project_root_option(p)
    return p


@contextmanager
def _guardian(args: argparse.Namespace, readonly: bool = False) -> Iterator[Guardian]:
    resolve_settings(args)  # the option table's values for unset flags
    # The policy is read from the project root (the nearest pyproject.toml, pytest.ini,
    # tox.ini or setup.cfg upward, or --project-root), as the plugin does: never from
    # the genome file's folder.
    root = project_root(args)
    store = open_store(args.store, readonly=readonly)
    try:
        try:
            genome, _ = genome_path(given_genome(args), root)
            g = Guardian.open(store, root, genome.resolve())
        except (GuardianConfigError, GuardianError, StoreError) as exc:
            raise CommandError(str(exc).splitlines()[0]) from None
        except (sqlite3.DatabaseError, OSError) as exc:
            raise CommandError(f"{store_label(args.store)}: {exc}".splitlines()[0]) from None
        try:
            yield g
        except PolicyError as exc:
            raise CommandError(f"refused: {exc}", 1) from None
        except AuditChainError as exc:
            raise CommandError(f"refused: {exc}", 1) from None
        except GuardianError as exc:
            raise CommandError(str(exc)) from None
        except sqlite3.DatabaseError as exc:
            raise CommandError(f"{store_label(args.store)}: {exc}", 1) from None
        except StoreError as exc:  # PostgreSQL: the message names the store
            raise CommandError(str(exc).splitlines()[0], 1) from None
    finally:
        store.close()


# The audit event that records each decision, whose actor decided.
_DECISION_EVENTS = {"rejected": "proposal_rejected", "adopted": "proposal_approved"}


def _decider(g: Guardian, p: Proposal) -> str:
    """`` by bob`` for a decided proposal: the actor of the decision's audit entry (the
    proposal row names only its author). Superseded ones name their successor."""
    if p.status == "superseded":
        return f" ({p.decision_reason})" if p.decision_reason else ""
    event = _DECISION_EVENTS.get(p.status)
    if event is None:
        return ""
    decided = list(g.audit.entries(change_id=p.id, event_type=event))
    if not decided:
        return " by ?"
    last = decided[-1]
    if last.details.get("auto"):
        return " automatically (low impact)"
    if last.details.get("withdrawn_by_author"):
        return f" by {last.actor} (withdrawn by its author)"
    return f" by {last.actor}"


def _line(p: Proposal, verified: list[Any] | None = None, decided: str = "") -> str:
    """One line per proposal: who decided it (``decided``), who wrote it, who approved.
    With ``verified`` (the approvals whose signatures verify), any other approval row is
    marked: a name in the store is not an approval."""
    people = (
        ", ".join(
            a.by if verified is None or a in verified else f"{a.by} (UNVERIFIED)"
            for a in p.approvals
        )
        or "-"
    )
    return (
        f"{p.id}  {p.module:<16} {p.impact:<8} {p.status}{decided}  author {p.author}  "
        f"approvals: {people}"
    )


def _genes_lines(genome: Any) -> list[str]:
    lines = []
    if not genome.genes:
        lines.append("    no genes: calls run bare")
    for kind, gene in genome.genes.items():
        params = ", ".join(f"{k}={json.dumps(v)}" for k, v in gene.to_dict().items())
        lines.append(f"    {kind}: {params}")
    return lines


def _show(g: Guardian, p: Proposal) -> tuple[list[str], bool]:
    """The full text of one proposal; and whether it still matches what was filed."""
    intact = True
    notes = []
    verified: list[Any] = []
    try:
        verified = _verified(g, p, g.filed_binding(p))
    except AuditChainError as exc:
        intact = False
        notes.append(f"  WARNING: {exc}")
    except PolicyError as exc:
        notes.append(f"  note: {exc}")
    forged = [a for a in p.approvals if a.signed and a not in verified]
    if forged:
        intact = False
        notes.append(
            f"  WARNING: {len(forged)} approval row(s) do not verify against "
            f"{g.allowed_signers}: they do not count (see `rafael audit verify`)"
        )
    out = [_line(p, verified, _decider(g, p)), *notes]
    for r in p.reasons:
        out.append(f"  reason: {r}")
    if p.status == "pending":
        for gap in g.pending_requirements(p):
            out.append(f"  needs: {gap}")
    out += _approval_lines(p, verified)
    if p.decision_reason:
        out.append(f"  decision: {p.decision_reason}")
    out += _candidate_lines(g, p)
    return out, intact


def _approval_lines(p: Proposal, verified: list[Any]) -> list[str]:
    out: list[str] = []
    for a in p.approvals:
        role = f" as {a.role}" if a.role else ""
        if not a.fingerprint:
            key = " (unsigned: does not count)"
        elif a in verified:
            key = f" (key {a.fingerprint}, signature verified)"
        else:
            key = f" (key {a.fingerprint}: signature does NOT verify, does not count)"
        out.append(f"  approved by {a.by}{role}{key} at {a.at}: {a.reason}")
    return out


def _measured_genome_file(g: Guardian, p: Proposal) -> Path:
    """The genome file the proposal's run measured (what an approval writes), not the
    one ``--genome`` resolves from here: a diff against another file would show genes
    that are not the ones shipped."""
    from pytest_rafael.guardian.decisions import filed_genome_file

    recorded = filed_genome_file(g.audit, p)
    return g.genome_file if recorded is None else g.project_root / recorded


def _candidate_lines(g: Guardian, p: Proposal) -> list[str]:
    """The candidate's genes and its diff against the adopted genome."""
    from pytest_rafael.genome.file import GenomeFileError, load_genome_file
    from pytest_rafael.genome.genome import Genome, declared

    out: list[str] = []
    try:
        candidate = Genome.from_dict(p.module, dict(p.candidate))
    except ValueError as exc:
        out.append(f"  candidate: invalid ({exc})")
        return out
    out.append(f"  candidate genome (generation {candidate.generation}, id {candidate.id}):")
    out.append(f"    idempotent: {declared(candidate.idempotent)}")
    out += _genes_lines(candidate)
    path = _measured_genome_file(g, p)
    try:
        adopted = load_genome_file(path).get(p.module)
    except GenomeFileError as exc:
        out.append(f"  cannot read {path} to diff against: {exc}")
        return out
    if adopted is None:
        out.append(f"  diff against {path}: {p.module!r} has no adopted genome yet")
        adopted = Genome(p.module)
    else:
        out.append(
            f"  diff against the adopted genome in {path} (generation {adopted.generation}):"
        )
    changes = adopted.diff(candidate)
    out += [f"    {line}" for line in changes] or ["    no differences"]
    return out


def cmd_proposals(args: argparse.Namespace) -> int:
    with _guardian(args, readonly=True) as g:
        if args.id:
            p = g.get(args.id)
            if args.json:
                print(json.dumps(p.to_dict(), indent=2, sort_keys=True))
                return 0
            lines, intact = _show(g, p)
            print("\n".join(lines))
            return 0 if intact else 1
        proposals = g.proposals(args.status, args.module)
        if args.json:
            print(json.dumps([p.summary() for p in proposals], indent=2, sort_keys=True))
        elif not proposals:
            print("no proposals")
        else:
            for p in proposals:
                decided = _decider(g, p)
                try:
                    print(_line(p, _verified(g, p, g.filed_binding(p)), decided))
                except (AuditChainError, PolicyError):
                    print(_line(p, [], decided))
    return 0


def _verified(g: Guardian, p: Proposal, bound: Mapping[str, Any]) -> list[Any]:
    """The approvals of ``p`` whose signatures verify over what was filed."""
    from pytest_rafael.guardian.decisions import verified_approvals

    if not p.approvals or not g.allowed_signers.is_file():
        return []
    return verified_approvals(g.allowed_signers, p.approvals, bound)


def _signing_key(g: Guardian, given: str | None) -> Path:
    from pytest_rafael.guardian.signatures import find_signing_key, require_allowed_signers

    # Without an allowed-signers file nothing can verify: say how to create it first.
    require_allowed_signers(g.allowed_signers)
    key, why = find_signing_key(given, cwd=g.project_root)
    if key is None:
        raise PolicyError(f"decisions must be signed: {why}")
    return key


def cmd_approve(args: argparse.Namespace) -> int:
    with _guardian(args) as g:
        author = g.get(args.id).author
        if same_actor(g.actor, author):
            # Separation of duties binds whoever runs the command too: the author cannot
            # record an approval in another person's name.
            raise PolicyError(
                f"{g.actor!r} is the author of proposal {args.id} and cannot "
                f"record approvals for it, in any name (the acting user comes from "
                f"$RAFAEL_ACTOR, else the login name: a reviewer on the same machine sets "
                f"RAFAEL_ACTOR to their own name; the signature is what proves who they are)"
            )
        key = _signing_key(g, args.key)
        p = g.approve(args.id, args.by, args.role, args.reason, key=key)
        fp = next((a.fingerprint for a in p.approvals if a.by == args.by.strip()), None)
        signed = f" (signed by key {fp})" if fp else ""
        if p.status == "adopted":
            print(
                f"approved by {args.by}{signed}: proposal {p.id} ({p.module}, {p.impact}) "
                f"adopted; wrote {g.genome_file}"
            )
        else:
            gaps = "; ".join(g.pending_requirements(p))
            print(
                f"approval by {args.by}{signed} recorded: proposal {p.id} ({p.module}, "
                f"{p.impact}) still needs {gaps}"
            )
    return 0


def cmd_reject(args: argparse.Namespace) -> int:
    with _guardian(args) as g:
        key = _signing_key(g, args.key)
        p = g.reject(args.id, args.by, args.reason, key=key)
        print(f"rejected by {args.by}: proposal {p.id} ({p.module}); genome file unchanged")
    return 0
