"""Compliance checks: each framework's controls, evaluated against what the store holds.

Every control is recomputed from the records (proposals, approvals, the audit chain, the
store file's mode), never from a stored verdict, so removing or editing the evidence a
control rests on makes it fail. Frameworks and what they ask of a genome change:

* ISO 27001: every change documented with a rationale and audit entries; records match
  the audit trail; the log is intact.
* SOC 2: separation of duties (nobody approves their own change; each adoption had the
  approvals its impact needs); an unbroken audit chain.
* GDPR: no personal data in audit details beyond actor identifiers; integrity.
* HIPAA: identified approvers; the store readable by its owner only; audit controls.
* PCI-DSS: modules tagged ``pci`` adopted only with two approvers and passing chaos
  evidence; audit trail protected from modification.
"""

from __future__ import annotations

import ipaddress
import os
import re
import stat
from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_rafael.guardian.actor import same_actor
from pytest_rafael.guardian.audit import AuditEntry, AuditLog, VerifyResult
from pytest_rafael.guardian.config import GuardianConfig
from pytest_rafael.guardian.integrity import IntegrityResult, verify_integrity
from pytest_rafael.guardian.policy import counted, evidence_passes, requirement, unmet
from pytest_rafael.guardian.proposals import (
    Proposal,
    ProposalRepo,
    binding_differences,
    binding_of,
    ensure_proposal_schema,
    evidence_digest,
)
from pytest_rafael.store.core import Store

FRAMEWORKS: dict[str, str] = {
    "iso27001": "ISO/IEC 27001:2022",
    "soc2": "SOC 2 (Trust Services Criteria)",
    "gdpr": "GDPR",
    "hipaa": "HIPAA Security Rule",
    "pci-dss": "PCI DSS v4.0",
}

# Identities that do not identify a person: an approval by one of them is anonymous.
GENERIC_IDENTITIES = frozenset(
    {"", "unknown", "anonymous", "root", "admin", "administrator", "user", "nobody", "ci"}
)
# Detail keys that hold actor identifiers, which GDPR-minimal audit records may keep.
ACTOR_KEYS = frozenset({"recorded_by", "approvers", "by", "actor", "principals"})
# Detail keys that hold signatures, key fingerprints and digests: encoded binary, where
# digit runs can look like a card or phone number by chance.
CRYPTO_KEYS = frozenset({"signature", "fingerprint", "keys", "sha256", "anchor"})
PERSONAL_KEYS = frozenset(
    {
        "email",
        "e-mail",
        "phone",
        "telephone",
        "address",
        "full_name",
        "ssn",
        "dob",
        "birth_date",
        "date_of_birth",
        "ip",
        "ip_address",
        "passport",
        "patient",
    }
)
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
# Phone numbers in international (+...) or North American form; dates and ids do not
# match these shapes.
_PHONE = re.compile(
    r"(?<![\w+])(?:\+\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{2,4}(?:[ .-]?\d{2,4}){2,}"
    r"|\(\d{3}\) ?\d{3}-\d{4}|\d{3}-\d{3}-\d{4})(?![\w])"
)
_IPV4 = re.compile(r"(?<![\w.])((?:\d{1,3}\.){3}\d{1,3})(?![\w.])")
# Bounded by non-word characters so digit runs inside hex hashes never count.
_CARD = re.compile(r"(?<!\w)(?:\d[ -]?){12,18}\d(?!\w)")

_SHOW = 5  # evidence lines listed per problem kind


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
    genome_file: tuple[str, Mapping[str, Any] | None, str | None] | None = None
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
            genome_file=None if genome_file is None else _read_genomes(genome_file),
        )

    def events(self, p: Proposal, event_type: str) -> list[AuditEntry]:
        return [e for e in self.entries.get(p.id, ()) if e.event_type == event_type]


def _read_genomes(path: Path) -> tuple[str, Mapping[str, Any] | None, str | None]:
    from pytest_rafael.genome.file import load_genome_file

    if not path.exists():
        return str(path), None, None
    try:
        return str(path), {m: g.genes_dict() for m, g in load_genome_file(path).items()}, None
    except (OSError, ValueError) as exc:
        return str(path), None, str(exc).splitlines()[0]


def check_compliance(
    store: Store,
    config: GuardianConfig,
    key: bytes | None = None,
    frameworks: list[str] | None = None,
    genome_file: Path | None = None,
    allowed_signers: Path | None = None,
) -> list[Control]:
    """Evaluate the controls of ``frameworks`` (all by default). With ``genome_file``,
    ISO 27001 also checks that the file holds exactly the adopted genomes (and the chain
    controls that the store holds the file's audit anchor); with ``allowed_signers``,
    the chain controls also verify every signed decision."""
    facts = Facts.gather(store, config, key, genome_file, allowed_signers)
    out: list[Control] = []
    for name in frameworks or list(FRAMEWORKS):
        if name not in FRAMEWORKS:
            raise ValueError(f"unknown framework {name!r} (known: {', '.join(FRAMEWORKS)})")
        out.extend(_CHECKS[name](facts))
    return out


# -- shared controls -----------------------------------------------------------------


def _chain(framework: str, cid: str, title: str, f: Facts) -> Control:
    v = f.verify
    if v.ok:
        ev = [
            f"audit chain of {v.entries} entries verifies (SHA-256 chain"
            + (", HMAC checked)" if v.hmac_checked else ", no HMAC key set)")
        ]
    else:
        ev = [f"audit chain broken at entry {v.first_broken}: {v.reason}"]
    return Control(framework, cid, title, v.ok, tuple(ev))


def _limited(problems: list[str]) -> list[str]:
    more = len(problems) - _SHOW
    return problems[:_SHOW] + ([f"... and {more} more"] if more > 0 else [])


def _documented(framework: str, cid: str, f: Facts) -> Control:
    problems: list[str] = []
    for p in f.proposals:
        if not p.reasons:
            problems.append(f"proposal {p.id} ({p.module}) has no rationale (impact reasons)")
        if not f.events(p, "proposal_created"):
            problems.append(f"proposal {p.id} ({p.module}) has no proposal_created audit entry")
        if p.status == "adopted":
            for needed in ("proposal_approved", "genome_adopted", "genome_file_written"):
                if not f.events(p, needed):
                    problems.append(f"adopted proposal {p.id} has no {needed} audit entry")
        if p.status == "rejected":
            if not (p.decision_reason or "").strip():
                problems.append(f"rejected proposal {p.id} has no rejection reason")
            if not f.events(p, "proposal_rejected"):
                problems.append(f"rejected proposal {p.id} has no proposal_rejected entry")
    ok = not problems
    ev = [f"{len(f.proposals)} proposal(s) checked"] + (
        _limited(problems) if problems else ["each has a rationale and its audit entries"]
    )
    return Control(
        framework,
        cid,
        "Every change is documented with a rationale and audit entries",
        ok,
        tuple(ev),
    )


def _matches_audit(framework: str, cid: str, f: Facts) -> Control:
    """The proposal rows agree with what the chain recorded when they were made."""
    problems: list[str] = []
    for p in f.proposals:
        created = f.events(p, "proposal_created")
        if not created:
            continue  # reported by the documentation control
        d = created[0].details
        if d.get("impact") != p.impact:
            problems.append(
                f"proposal {p.id}: impact {p.impact!r} but audited as {d.get('impact')!r}"
            )
        if d.get("evidence") != evidence_digest(p.evidence):
            problems.append(f"proposal {p.id}: evidence differs from the audited evidence")
        bound = d.get("binding")
        if not isinstance(bound, Mapping):
            problems.append(f"proposal {p.id}: not bound to the audit trail (no binding)")
        else:
            for what in binding_differences(bound, binding_of(p)):
                problems.append(f"proposal {p.id}: {what} differs from what was filed")
        if not same_actor(created[0].actor, p.author):
            problems.append(f"proposal {p.id}: author differs from the audited author")
        decided = {e.event_type for e in f.entries.get(p.id, ())}
        if p.status == "pending" and decided & {"genome_adopted", "proposal_rejected"}:
            problems.append(f"proposal {p.id}: pending, but the audit shows a decision")
    ok = not problems
    ev = [f"{len(f.proposals)} proposal record(s) compared with the audit trail"] + (
        _limited(problems) if problems else ["all agree"]
    )
    return Control(framework, cid, "Change records match the audit trail", ok, tuple(ev))


def _shipped_matches_adopted(f: Facts) -> list[Control]:
    """The genome file (what ships) holds, per module, the genes of that module's latest
    adopted proposal, and nothing else: no edit bypassed the guardian."""
    if f.genome_file is None:
        return []
    from pytest_rafael.genome.genome import Genome

    path, shipped, error = f.genome_file
    latest: dict[str, Proposal] = {}
    for p in f.proposals:
        if p.status == "adopted":
            prior = latest.get(p.module)
            if prior is None or (p.decided_at or "") >= (prior.decided_at or ""):
                latest[p.module] = p
    problems: list[str] = []
    if error is not None:
        problems.append(f"{path} cannot be read: {error}")
    elif shipped is None:
        if latest:
            problems.append(f"{path} is missing but {len(latest)} module(s) were adopted")
    else:
        for module, genes in sorted(shipped.items()):
            last = latest.get(module)
            if last is None:
                problems.append(f"{path}: {module!r} was not adopted through the guardian")
                continue
            try:
                adopted = Genome.from_dict(module, dict(last.candidate)).genes_dict()
            except ValueError:
                adopted = None
            if genes != adopted:
                problems.append(
                    f"{path}: {module!r} differs from its adopted proposal {last.id} "
                    "(edited outside the guardian)"
                )
        for module, p in sorted(latest.items()):
            if module not in shipped:
                problems.append(f"{path}: adopted genome of {module!r} ({p.id}) is missing")
    ok = not problems
    count = 0 if shipped is None else len(shipped)
    ev = [f"{path}: {count} module(s); {len(latest)} module(s) with adoptions"] + (
        _limited(problems) if problems else ["every shipped genome is its latest adoption"]
    )
    return [
        Control(
            "iso27001",
            "A.8.9",
            "Configuration management: the shipped genome file holds only adopted genomes",
            ok,
            tuple(ev),
        )
    ]


def _separation(framework: str, cid: str, f: Facts) -> Control:
    problems: list[str] = []
    adopted = 0
    for p in f.proposals:
        for a in p.approvals:
            if same_actor(a.by, p.author):
                problems.append(f"proposal {p.id}: approved by its author {a.by!r}")
            recorded = [e for e in f.events(p, "approval_recorded") if same_actor(e.actor, a.by)]
            if not recorded:
                problems.append(f"proposal {p.id}: approval by {a.by!r} has no audit entry")
            elif not a.signed:
                problems.append(f"proposal {p.id}: approval by {a.by!r} is not signed")
        if p.status in ("adopted", "approved"):
            adopted += 1
            req = requirement(p.impact, p.module, f.config)
            for gap in unmet(req, p.approvals, p.author, p.evidence, f.config):
                problems.append(f"{p.impact} proposal {p.id} ({p.module}) adopted without {gap}")
    ok = not problems
    ev = [f"{adopted} adoption(s), {sum(len(p.approvals) for p in f.proposals)} approval(s)"] + (
        _limited(problems)
        if problems
        else ["no author approved their own change; every adoption met its approval policy"]
    )
    return Control(framework, cid, "Separation of duties in change approval", ok, tuple(ev))


# -- framework-specific --------------------------------------------------------------


def _walk(value: Any, path: str = "") -> Iterator[tuple[str, str, Any]]:
    if isinstance(value, Mapping):
        for k, v in value.items():
            yield from _walk(v, f"{path}.{k}" if path else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _walk(v, f"{path}[{i}]")
    else:
        yield path, path.rsplit(".", 1)[-1].split("[", 1)[0].lower(), value


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _personal_data(text: str) -> str | None:
    if _EMAIL.search(text):
        return "an e-mail address"
    for m in _CARD.finditer(text):
        digits = re.sub(r"\D", "", m.group())
        if 13 <= len(digits) <= 19 and _luhn(digits):
            return "a payment card number"
    for m in _IPV4.finditer(text):
        if _public_ip(m.group(1)):
            return "an IP address"
    if _PHONE.search(text):
        return "a phone number"
    return None


def _public_ip(text: str) -> bool:
    # Loopback and private addresses name test infrastructure (proxies, upstreams),
    # not people.
    try:
        addr = ipaddress.IPv4Address(text)
    except ValueError:
        return False
    return not (addr.is_private or addr.is_loopback or addr.is_unspecified)


def _minimisation(f: Facts) -> Control:
    problems: list[str] = []
    for entry_id, details in f.all_details:
        for path, leaf, value in _walk(details):
            top = path.split(".", 1)[0].split("[", 1)[0]
            if top in ACTOR_KEYS or top in CRYPTO_KEYS:
                continue
            if leaf in PERSONAL_KEYS and value not in (None, ""):
                problems.append(f"entry {entry_id}: details.{path} is a personal-data field")
                continue
            if isinstance(value, str):
                kind = _personal_data(value)
                if kind:
                    problems.append(f"entry {entry_id}: details.{path} contains {kind}")
    ok = not problems
    ev = [f"{len(f.all_details)} audit entries scanned"] + (
        _limited(problems) if problems else ["only actor identifiers identify people"]
    )
    return Control(
        "gdpr",
        "Art. 5(1)(c)",
        "Data minimisation: no personal data in audit details beyond actor identifiers",
        ok,
        tuple(ev),
    )


def _identified(f: Facts) -> Control:
    problems: list[str] = []
    count = 0
    for p in f.proposals:
        for a in p.approvals:
            count += 1
            if a.by.strip().casefold() in GENERIC_IDENTITIES:
                problems.append(f"proposal {p.id}: approver {a.by!r} does not identify a person")
            elif not a.signed:
                problems.append(
                    f"proposal {p.id}: approver {a.by!r} is not authenticated (no signature)"
                )
            elif not any(
                same_actor(e.actor, a.by)
                and e.details.get("fingerprint") == a.fingerprint
                and e.details.get("signature") == a.signature
                for e in f.events(p, "approval_recorded")
            ):
                problems.append(f"proposal {p.id}: approver {a.by!r} not in the audit trail")
        for e in f.events(p, "proposal_rejected"):
            if e.actor.strip().casefold() in GENERIC_IDENTITIES:
                problems.append(f"proposal {p.id}: rejected by unidentified {e.actor!r}")
            elif not e.details.get("signature"):
                problems.append(f"proposal {p.id}: rejection by {e.actor!r} is not signed")
    ok = not problems
    ev = [f"{count} approval(s) checked"] + (
        _limited(problems)
        if problems
        else ["every approver is a named person whose SSH signature is in the audit"]
    )
    if isinstance(f.verify, IntegrityResult) and f.verify.ok:
        ev.append(
            f"{f.verify.signatures_checked} signature(s) verified against the allowed signers"
            if not f.verify.signatures_unchecked
            else f"signatures not verified here ({f.verify.signatures_unchecked}); "
            "the chain controls do, given the allowed-signers file"
        )
    return Control(
        "hipaa", "164.312(d)", "Person authentication: approvers are identified", ok, tuple(ev)
    )


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


def _file_mode(f: Facts) -> Control:
    if f.db_access is not None:
        return Control(
            "hipaa",
            "164.312(a)(1)",
            "Access control: the audit store is readable by its owner only",
            not f.db_access,
            f.db_access
            or (
                "PostgreSQL: no grants to PUBLIC on the audit table; UPDATE and DELETE "
                "refused by trigger",
            ),
        )
    problems = [
        f"{path} has mode {mode:04o} (group/other may access it)"
        for path, mode in f.store_modes.items()
        if mode & 0o077
    ]
    if not f.store_modes:
        problems.append("the store file is missing")
    ok = not problems
    ev = problems or [f"{p}: mode {m:04o}" for p, m in f.store_modes.items()]
    return Control(
        "hipaa",
        "164.312(a)(1)",
        "Access control: the audit store is readable by its owner only",
        ok,
        tuple(ev),
    )


def _pci_changes(f: Facts) -> Control:
    pci_modules = sorted(m for m, pol in f.config.modules.items() if "pci" in pol.tags)
    problems: list[str] = []
    checked = 0
    for p in f.proposals:
        if p.module not in pci_modules or p.status not in ("adopted", "approved"):
            continue
        checked += 1
        # Independent: signed, not by the author, distinct keys (and names).
        approvers = counted(p.approvals, p.author)
        if len(approvers) < 2:
            problems.append(
                f"pci proposal {p.id} ({p.module}) adopted with "
                f"{len(approvers)} independent approver(s), needs 2"
            )
        ok, why = evidence_passes(p.evidence, f.config)
        if not ok:
            problems.append(
                f"pci proposal {p.id} ({p.module}) adopted without passing chaos evidence: {why}"
            )
    ok = not problems
    scope = ", ".join(pci_modules) if pci_modules else "none configured"
    ev = [f"pci-tagged modules: {scope}; {checked} adoption(s) checked"] + (
        _limited(problems)
        if problems
        else ["each had two independent approvers and passing chaos evidence"]
    )
    return Control(
        "pci-dss",
        "6.5.1",
        "Changes to cardholder-data modules: two approvers and passing chaos evidence",
        ok,
        tuple(ev),
    )


_CHECKS = {
    "iso27001": lambda f: [
        _documented("iso27001", "A.8.32", f),
        _matches_audit("iso27001", "A.5.33", f),
        _chain("iso27001", "A.8.15", "Logging: the audit log is complete and unaltered", f),
        *_shipped_matches_adopted(f),
    ],
    "soc2": lambda f: [
        _separation("soc2", "CC8.1", f),
        _chain("soc2", "CC7.2", "Unbroken audit chain", f),
    ],
    "gdpr": lambda f: [
        _minimisation(f),
        _chain("gdpr", "Art. 5(1)(f)", "Integrity of processing records", f),
    ],
    "hipaa": lambda f: [
        _identified(f),
        _file_mode(f),
        _chain("hipaa", "164.312(b)", "Audit controls: activity is recorded tamper-evidently", f),
    ],
    "pci-dss": lambda f: [
        _pci_changes(f),
        _chain("pci-dss", "10.3.2", "Audit logs are protected from modification", f),
    ],
}
