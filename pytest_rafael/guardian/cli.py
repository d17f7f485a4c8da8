"""``rafael audit verify|export|compliance``."""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import unicodedata
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from pytest_rafael import __version__
from pytest_rafael.cli import CommandError, resolve_settings
from pytest_rafael.guardian.audit import AuditEntry, AuditLog, audit_key_from_env
from pytest_rafael.guardian.cli_common import (
    add_genome_option,
    add_project_root_option,
    add_store_option,
    genome_path,
    given_genome,
    load_config,
    open_store,
    project_root,
    store_errors,
)
from pytest_rafael.guardian.compliance import FRAMEWORKS, check_compliance
from pytest_rafael.guardian.integrity import verify_integrity
from pytest_rafael.guardian.signatures import allowed_signers_path
from pytest_rafael.store.core import StoreError


def register(sub: argparse._SubParsersAction[Any], group: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "verify",
        help="verify the audit chain, the genome file's anchor, the proposals and the "
        "signed decisions; exit 1 on any tampering",
    )
    add_store_option(p)
    add_genome_option(p)
    add_project_root_option(p)
    p.add_argument(
        "--results",
        metavar="FILE",
        action="append",
        default=[],
        help="a results.json whose recorded audit head must still be in the chain (repeatable)",
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("export", help="export audit entries for a SIEM (JSON lines or CEF)")
    add_store_option(p)
    p.add_argument("--format", choices=("jsonl", "cef"), default="jsonl")
    p.add_argument("--output", "-o", metavar="FILE", help="write here instead of stdout")
    p.add_argument(
        "--since",
        type=int,
        default=0,
        metavar="ID",
        help="only entries with an id greater than ID (incremental export)",
    )
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("compliance", help="check compliance controls against the store")
    add_store_option(p)
    p.add_argument(
        "--framework",
        choices=tuple(FRAMEWORKS),
        action="append",
        help="one framework (repeatable; default: all)",
    )
    add_project_root_option(p)
    add_genome_option(p)
    p.add_argument("--json", action="store_true", help="print the controls as JSON")
    p.set_defaults(func=cmd_compliance)


def cmd_verify(args: argparse.Namespace) -> int:
    resolve_settings(args)  # the option table's values for unset flags
    root = project_root(args)
    config = load_config(root)
    signers = allowed_signers_path(root, config.allowed_signers)
    genome, _ = genome_path(given_genome(args), root)
    _check_readable(genome)
    drift: list[str] = []
    with store_errors(args.store), open_store(args.store, readonly=True) as store:
        result = verify_integrity(store, audit_key_from_env(), genome, signers)
        if result.ok:
            result = _check_results_heads(store, args.results, result)
            drift = _genome_drift(store, genome)
    if args.json:
        print(json.dumps({**result.to_dict(), "genome_drift": drift}, sort_keys=True))
    elif result.ok:
        mode = "HMAC checked" if result.hmac_checked else "hash chain only; RAFAEL_AUDIT_KEY unset"
        print(f"audit chain OK: {result.entries} entries verified ({mode})")
        anchor = result.anchor or {}
        if anchor.get("status") == "ok":
            print(f"anchor: entry {anchor['entry']} named by {genome} is in the chain")
        elif anchor.get("status") == "no-anchor":
            print(
                f"note: {genome} carries no audit anchor (written before anchoring, or by "
                "hand): truncation and rollback are not checked against it"
            )
        elif anchor.get("status") == "no-file":
            print(f"note: no genome file at {genome}: no anchor to check (--genome)")
        print(
            f"{result.proposals_checked} proposal(s) match what was filed; "
            f"{result.signatures_checked} signed decision(s) verified"
        )
        if result.unchecked_macs:
            print(
                f"note: {result.unchecked_macs} entries carry an HMAC that was not checked "
                "(set RAFAEL_AUDIT_KEY to check them)"
            )
        for problem in drift:  # the chain is intact; what ships is not what it adopted
            print(f"note: {problem} (rafael audit compliance fails A.8.9 on it)")
    else:
        where = f"at entry {result.first_broken}" if result.first_broken is not None else ""
        print(
            f"audit chain BROKEN{' ' + where if where else ''}: {result.reason} "
            f"({result.entries} entries in the store)"
        )
    return 0 if result.ok else 1


def _check_readable(genome: Path) -> None:
    """A genome file that cannot be read is an input error (exit 2), not a broken chain:
    nothing about the chain is known until its anchor can be read."""
    from pytest_rafael.common.yaml_limits import read_bounded
    from pytest_rafael.genome.file import MAX_GENOME_BYTES

    try:
        read_bounded(genome, MAX_GENOME_BYTES).decode("utf-8")
    except FileNotFoundError:
        return
    except IsADirectoryError:
        raise CommandError(f"{genome}: is a folder, not a genome file (--genome)") from None
    except UnicodeDecodeError:
        raise CommandError(f"{genome}: cannot read the genome file: not UTF-8 text") from None
    except OSError as exc:
        raise CommandError(f"{genome}: cannot read the genome file: {exc.strerror}") from None


def _genome_drift(store: Any, genome: Path) -> list[str]:
    """Where the genome file is not its modules' latest adoptions (see
    ``compliance.genome_drift``); nothing when no genome file exists and nothing was
    adopted."""
    from pytest_rafael.guardian.compliance import genome_drift, latest_adoptions
    from pytest_rafael.guardian.compliance_facts import read_genomes
    from pytest_rafael.guardian.proposals import ProposalRepo

    return genome_drift(read_genomes(genome), latest_adoptions(ProposalRepo(store.conn).list()))


def _check_results_heads(store: Any, files: list[str], result: Any) -> Any:
    """Each results.json's recorded head (the last entry at the end of that run) must
    still be in the chain, with its hash."""
    import dataclasses

    for name in files:
        try:
            data = json.loads(Path(name).read_text(encoding="utf-8"))
            head = data["guardian"]["audit"]["head"]
            entry, digest = int(head["id"]), str(head["hash"])
        except OSError as exc:
            raise CommandError(f"{name}: cannot read: {exc.strerror}") from None
        except (ValueError, KeyError, TypeError):
            raise CommandError(f"{name}: no guardian.audit.head recorded in it") from None
        row = store.conn.execute("SELECT hash FROM audit WHERE id = ?", (entry,)).fetchone()
        if row is None or str(row[0]) != digest:
            why = "is not in the store" if row is None else "does not match the store"
            return dataclasses.replace(
                result,
                ok=False,
                first_broken=entry,
                reason=f"entry {entry}, the head recorded in {name}, {why}: the audit log "
                "was truncated or the store rolled back",
            )
    return result


def cmd_export(args: argparse.Namespace) -> int:
    resolve_settings(args)  # the option table's values for unset flags
    with store_errors(args.store), open_store(args.store, readonly=True) as store:
        log = AuditLog(store, audit_key_from_env())
        result = log.verify()
        entries = [e for e in log.entries() if e.id > args.since]
    if not result.ok:
        print(
            f"rafael audit: warning: audit chain broken at entry {result.first_broken}: "
            f"{result.reason}",
            file=sys.stderr,
        )
    write = to_cef if args.format == "cef" else to_jsonl
    if args.output:
        try:
            with Path(args.output).open("w", encoding="utf-8") as fh:
                write(entries, fh)
        except OSError as exc:
            raise CommandError(f"{args.output}: cannot write: {exc.strerror}") from None
    else:
        write(entries, sys.stdout)
    return 0


def cmd_compliance(args: argparse.Namespace) -> int:
    resolve_settings(args)  # the option table's values for unset flags
    root = project_root(args)
    config = load_config(root)
    with store_errors(args.store), open_store(args.store, readonly=True) as store:
        controls = check_compliance(
            store,
            config,
            audit_key_from_env(),
            args.framework,
            _genome_to_check(*genome_path(given_genome(args), root), store),
            allowed_signers=allowed_signers_path(root, config.allowed_signers),
        )
    if args.json:
        print(json.dumps([c.to_dict() for c in controls], indent=2))
    else:
        current = None
        for c in controls:
            if c.framework != current:
                current = c.framework
                print(FRAMEWORKS[c.framework])
            print(f"  {'PASS' if c.passed else 'FAIL'}  {c.id}  {c.title}")
            for line in c.evidence:
                print(f"        - {line}")
        failed = sum(not c.passed for c in controls)
        print(f"{len(controls) - failed} passed, {failed} failed")
    return 0 if all(c.passed for c in controls) else 1


def _genome_to_check(default: Path, explicit: bool, store: Any) -> Path | None:
    # Named explicitly: always checked (a missing file is a finding). Otherwise the
    # default file is checked where it exists, or where the store says genomes were
    # adopted (deleting the file must not make the control disappear); a directory
    # with neither never held one.
    if explicit or default.exists():
        return default
    try:
        (adopted,) = store.conn.execute(
            "SELECT count(*) FROM proposals WHERE status = 'adopted'"
        ).fetchone()
    except (sqlite3.OperationalError, StoreError):
        adopted = 0
    return default if adopted else None


# -- formats ---------------------------------------------------------------------------


def to_jsonl(entries: Iterable[AuditEntry], out: TextIO) -> None:
    # ensure_ascii: every control character, and the line and paragraph separators some
    # readers split lines on (U+0085, U+2028, U+2029), come out as \u escapes, so each
    # entry is exactly one line whatever its fields hold.
    for e in entries:
        out.write(json.dumps(e.to_dict(), sort_keys=True, ensure_ascii=True) + "\n")


# CEF severity (0-10) per event: decisions that change shipped behaviour rank highest.
_SEVERITY = {
    "run_started": 1,
    "run_finished": 1,
    "faults_injected": 2,
    "faults_reverted": 2,
    "proposal_created": 3,
    "approval_recorded": 4,
    "proposal_rejected": 5,
    "adoption_deferred": 5,
    "proposal_approved": 6,
    "genome_adopted": 6,
    "genome_file_written": 6,
}


def _controls(text: str, line_breaks: str | None) -> str:
    """Other control characters (C0, DEL, C1, the Unicode line/paragraph separators,
    bidirectional and zero-width format characters) as visible ``\\uXXXX`` text, so an
    exported field can neither break the line nor rewrite what a terminal shows."""
    out = []
    for ch in text:
        if ch in "\r\n" and line_breaks is not None:
            out.append(line_breaks if ch == "\n" else ("\\r" if line_breaks != " " else " "))
        elif unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp"):
            # An escaped backslash: readers unescape it to the visible text \uXXXX.
            out.append(f"\\\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return "".join(out)


def cef_header(value: object) -> str:
    """Escape a CEF header field: backslash and pipe (ArcSight CEF spec); line breaks
    become spaces and other control characters ``\\uXXXX``."""
    text = str(value).replace("\\", "\\\\").replace("|", "\\|").replace("\r\n", " ")
    return _controls(text, " ")


def cef_extension(value: object) -> str:
    """Escape a CEF extension value: backslash, equals sign and line breaks (spec); other
    control characters become ``\\uXXXX``."""
    text = str(value).replace("\\", "\\\\").replace("=", "\\=").replace("\r\n", "\n")
    return _controls(text, "\\n")


def cef_line(e: AuditEntry) -> str:
    try:
        rt = int(datetime.fromisoformat(e.timestamp).timestamp() * 1000)
    except ValueError:
        rt = 0
    ext: list[tuple[str, object]] = [
        ("rt", rt),
        ("suser", e.actor),
        ("externalId", e.id),
        ("cs1Label", "module"),
        ("cs1", e.module or ""),
        ("cs2Label", "changeId"),
        ("cs2", e.change_id or ""),
        ("cs3Label", "hash"),
        ("cs3", e.hash),
        ("cs4Label", "prevHash"),
        ("cs4", e.prev_hash),
        ("msg", json.dumps(dict(e.details), sort_keys=True, ensure_ascii=False)),
    ]
    header = "|".join(
        cef_header(v)
        for v in (
            "pytest-rafael",
            "rafael-guardian",
            __version__,
            e.event_type,
            e.event_type.replace("_", " "),
            _SEVERITY.get(e.event_type, 3),
        )
    )
    return f"CEF:0|{header}|" + " ".join(f"{k}={cef_extension(v)}" for k, v in ext)


def to_cef(entries: Iterable[AuditEntry], out: TextIO) -> None:
    for e in entries:
        out.write(cef_line(e) + "\n")
