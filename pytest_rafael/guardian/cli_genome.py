"""``rafael genome proposals|approve|reject``: review adoption proposals."""

from __future__ import annotations

import argparse
import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pytest_rafael.cli import CommandError
from pytest_rafael.guardian.actor import same_actor
from pytest_rafael.guardian.audit import AuditChainError
from pytest_rafael.guardian.cli_common import add_genome_option, add_store_option, open_store
from pytest_rafael.guardian.config import GuardianConfigError
from pytest_rafael.guardian.core import Guardian, GuardianError
from pytest_rafael.guardian.policy import PolicyError
from pytest_rafael.guardian.proposals import STATUSES, Proposal


def register(sub: argparse._SubParsersAction[Any], group: argparse.ArgumentParser) -> None:
    p = sub.add_parser("proposals", help="list adoption proposals (or show one by ID)")
    p.add_argument("id", nargs="?", help="a proposal id (or unique prefix) to show in full")
    p.add_argument("--status", choices=STATUSES, help="only proposals with this status")
    p.add_argument("--module", help="only proposals for this module")
    p.add_argument("--json", action="store_true", help="print JSON")
    add_store_option(p)
    add_genome_option(p)
    p.set_defaults(func=cmd_proposals)

    p = sub.add_parser("approve", help="approve a proposal; adopts it once the policy is met")
    p.add_argument("id", help="the proposal id (or a unique prefix)")
    p.add_argument("--by", required=True, metavar="NAME", help="who approves")
    p.add_argument("--role", metavar="ROLE", help="the approver's role (e.g. security-lead)")
    p.add_argument("--reason", default="", help="why")
    add_store_option(p)
    add_genome_option(p)
    p.set_defaults(func=cmd_approve)

    p = sub.add_parser("reject", help="reject a proposal (the genome file is not touched)")
    p.add_argument("id", help="the proposal id (or a unique prefix)")
    p.add_argument("--by", required=True, metavar="NAME", help="who rejects")
    p.add_argument("--reason", required=True, help="why")
    add_store_option(p)
    add_genome_option(p)
    p.set_defaults(func=cmd_reject)


@contextmanager
def _guardian(args: argparse.Namespace) -> Iterator[Guardian]:
    store = open_store(args.store)
    try:
        try:
            # The policy lives beside the genome file (the project's pyproject.toml), so
            # approving from another folder cannot step around it.
            genome = Path(args.genome).resolve()
            g = Guardian.open(store, genome.parent, genome)
        except GuardianConfigError as exc:
            raise CommandError(str(exc)) from None
        try:
            yield g
        except PolicyError as exc:
            raise CommandError(f"refused: {exc}", 1) from None
        except AuditChainError as exc:
            raise CommandError(str(exc), 1) from None
        except GuardianError as exc:
            raise CommandError(str(exc)) from None
        except sqlite3.DatabaseError as exc:
            raise CommandError(f"{args.store}: {exc}", 1) from None
    finally:
        store.close()


def _line(p: Proposal) -> str:
    people = ", ".join(a.by for a in p.approvals) or "-"
    return (
        f"{p.id}  {p.module:<16} {p.impact:<8} {p.status:<8} by {p.author:<12} approvals: {people}"
    )


def cmd_proposals(args: argparse.Namespace) -> int:
    with _guardian(args) as g:
        if args.id:
            p = g.get(args.id)
            if args.json:
                print(json.dumps(p.to_dict(), indent=2, sort_keys=True))
                return 0
            print(_line(p))
            for r in p.reasons:
                print(f"  reason: {r}")
            if p.status == "pending":
                for gap in g.pending_requirements(p):
                    print(f"  needs: {gap}")
            for a in p.approvals:
                role = f" as {a.role}" if a.role else ""
                print(f"  approved by {a.by}{role} at {a.at}: {a.reason}")
            if p.decision_reason:
                print(f"  decision: {p.decision_reason}")
            return 0
        proposals = g.proposals(args.status, args.module)
        if args.json:
            print(json.dumps([p.summary() for p in proposals], indent=2, sort_keys=True))
        elif not proposals:
            print("no proposals")
        else:
            for p in proposals:
                print(_line(p))
    return 0


def cmd_approve(args: argparse.Namespace) -> int:
    with _guardian(args) as g:
        author = g.get(args.id).author
        if same_actor(g.actor, author):
            # Separation of duties binds whoever runs the command too: the author cannot
            # record an approval in another person's name.
            raise PolicyError(f"{g.actor!r} is the author of proposal {args.id} and cannot "
                              f"record approvals for it, in any name")
        p = g.approve(args.id, args.by, args.role, args.reason)
        if p.status == "adopted":
            print(
                f"approved by {args.by}: proposal {p.id} ({p.module}, {p.impact}) adopted; "
                f"wrote {g.genome_file}"
            )
        else:
            gaps = "; ".join(g.pending_requirements(p))
            print(
                f"approval by {args.by} recorded: proposal {p.id} ({p.module}, {p.impact}) "
                f"still needs {gaps}"
            )
    return 0


def cmd_reject(args: argparse.Namespace) -> int:
    with _guardian(args) as g:
        p = g.reject(args.id, args.by, args.reason)
        print(f"rejected by {args.by}: proposal {p.id} ({p.module}); genome file unchanged")
    return 0
