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

from collections.abc import Iterable, Mapping
from pathlib import Path

from pytest_rafael.guardian.actor import same_actor
from pytest_rafael.guardian.compliance_facts import Control, Facts, GenomeFile, _limited
from pytest_rafael.guardian.config import GuardianConfig
from pytest_rafael.guardian.personal_data import _identified, _minimisation
from pytest_rafael.guardian.policy import counted, evidence_passes, requirement, unmet
from pytest_rafael.guardian.proposals import (
    Proposal,
    binding_differences,
    binding_of,
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


def genome_drift(genome_file: GenomeFile, latest: Mapping[str, Proposal]) -> list[str]:
    """What in the genome file (what ships) is not, per module, the genes of that
    module's latest adopted proposal (``latest_adoptions``): edits that bypassed the
    guardian. ``rafael audit verify`` notes them; control A.8.9 fails on them."""
    from pytest_rafael.genome.genome import Genome

    path, shipped, error = genome_file
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
    return problems


def latest_adoptions(proposals: Iterable[Proposal]) -> dict[str, Proposal]:
    """Each module's latest adopted proposal."""
    latest: dict[str, Proposal] = {}
    for p in proposals:
        if p.status == "adopted":
            prior = latest.get(p.module)
            if prior is None or (p.decided_at or "") >= (prior.decided_at or ""):
                latest[p.module] = p
    return latest


def _shipped_matches_adopted(f: Facts) -> list[Control]:
    """The genome file (what ships) holds, per module, the genes of that module's latest
    adopted proposal, and nothing else: no edit bypassed the guardian."""
    if f.genome_file is None:
        return []
    path, shipped, _ = f.genome_file
    latest = latest_adoptions(f.proposals)
    problems = genome_drift(f.genome_file, latest)
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
