"""Approval policy and separation of duties.

How many distinct people must approve a proposal depends on its impact level
(``approvals`` in the config: low 0, medium 1, high 2, critical 2 by default); critical
also needs one approver holding ``critical_role``; a module tagged ``pci`` needs at
least two approvers and passing chaos evidence whatever its level. Nobody may approve
their own change, nor approve twice. Approvers are told apart by the SSH key that
signed their approval (and, in addition, by name).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pytest_rafael.errors import RafaelError
from pytest_rafael.guardian.actor import ActorError, check_name, same_actor, skeleton
from pytest_rafael.guardian.config import GuardianConfig


class PolicyError(RafaelError):
    """An approval or decision the policy refuses; the message says which rule."""


@dataclass(frozen=True)
class Approval:
    by: str
    role: str | None
    reason: str
    at: str
    # The SSH key that signed it (``SHA256:...``) and the sshsig signature; None for an
    # approval recorded before decisions were signed, which never counts.
    fingerprint: str | None = None
    signature: str | None = None

    @property
    def signed(self) -> bool:
        return bool(self.fingerprint and self.signature)

    def to_dict(self) -> dict[str, Any]:
        return {
            "by": self.by,
            "role": self.role,
            "reason": self.reason,
            "at": self.at,
            "fingerprint": self.fingerprint,
        }


@dataclass(frozen=True)
class Requirement:
    approvers: int
    role: str | None = None
    needs_passing_evidence: bool = False

    def describe(self) -> str:
        parts = [f"{self.approvers} distinct approver{'s' if self.approvers != 1 else ''}"]
        if self.role:
            parts.append(f"one with role {self.role!r}")
        if self.needs_passing_evidence:
            parts.append("passing chaos evidence")
        return ", ".join(parts)


def requirement(level: str, module: str, config: GuardianConfig) -> Requirement:
    approvers = config.approvals[level]
    role = config.critical_role if level == "critical" else None
    pci = "pci" in config.module(module).tags
    if pci:
        approvers = max(approvers, 2)
    return Requirement(approvers, role, pci)


def evidence_passes(evidence: Mapping[str, Any], config: GuardianConfig) -> tuple[bool, str]:
    """Chaos evidence passes when it has tests, every test reached the minimum success
    rate, and no candidate scored below its baseline."""
    tests = evidence.get("tests") if isinstance(evidence, Mapping) else None
    if not tests or not isinstance(tests, Sequence):
        return False, "no chaos test evidence"
    for test in tests:
        if not isinstance(test, Mapping):
            return False, "malformed test evidence"
        where = f"{test.get('nodeid')} [{test.get('scenario')}]"
        rate = test.get("success_rate")
        if not isinstance(rate, (int, float)) or rate < config.evidence_min_success_rate:
            return False, (
                f"{where}: success rate {rate!r} below {config.evidence_min_success_rate}"
            )
        base, best = test.get("baseline_fitness"), test.get("best_fitness")
        if not isinstance(best, (int, float)):
            return False, f"{where}: no fitness measured"
        if isinstance(base, (int, float)) and best < base:
            return False, f"{where}: fitness {best} below baseline {base}"
    return True, f"{len(tests)} chaos test(s) passed"


def key_belongs_to(principals: Sequence[str], name: str) -> str | None:
    """The allowed-signers principal (or pattern, ``*@example.com``) of a key that names
    ``name``, compared by skeleton; None when none does."""
    target = skeleton(name)
    for principal in principals:
        pattern = principal.strip()
        if not pattern or pattern.startswith("!"):
            continue
        if fnmatch.fnmatchcase(target, skeleton(pattern)):
            return principal
    return None


def check_approver(
    *,
    author: str,
    by: str,
    role: str | None,
    existing: Sequence[Approval],
    config: GuardianConfig,
    fingerprint: str | None = None,
    key_principals: Sequence[str] = (),
    key_roles: Sequence[str] | None = None,
    file_roles: frozenset[str] = frozenset(),
) -> None:
    """Refuse an approval that breaks separation of duties.

    ``fingerprint``, ``key_principals`` and ``key_roles``: the signing key, and every
    principal and role the allowed-signers file lists for it (``file_roles``: the roles
    any key there holds). The key must not be listed for the author, and must not have
    approved already: approvers are distinct *keys* (and distinct names)."""
    try:
        check_name(by, "approver name")
        if role:
            check_name(role, "role")
    except ActorError as exc:
        raise PolicyError(str(exc)) from None
    from pytest_rafael.guardian.personal_data import GENERIC_IDENTITIES

    if by.strip().casefold() in GENERIC_IDENTITIES:
        # The HIPAA control fails on anonymous approvals for good (the log is append-only),
        # so they are refused here rather than reported later.
        raise PolicyError(f"{by!r} does not identify a person; approve under your own name")
    if same_actor(by, author):
        raise PolicyError(
            f"{by!r} authored this change and cannot approve it (separation of duties)"
        )
    owner = key_belongs_to(key_principals, author)
    if owner is not None:
        raise PolicyError(
            f"the signing key {fingerprint} is listed for {owner!r}, which names the author "
            f"{author!r}: the author cannot approve this change (separation of duties)"
        )
    if fingerprint:
        for a in existing:
            if a.fingerprint == fingerprint:
                raise PolicyError(
                    f"the key {fingerprint} already approved this change (as {a.by!r}); "
                    "approvers must be distinct keys"
                )
    if any(same_actor(by, a.by) for a in existing):
        raise PolicyError(f"{by!r} has already approved this change; approvers must be distinct")
    if role:
        _check_role(by, role, config, key_roles, file_roles)


def _check_role(
    by: str,
    role: str,
    config: GuardianConfig,
    key_roles: Sequence[str] | None,
    file_roles: frozenset[str],
) -> None:
    """A role listed in the policy's ``roles`` is held by the principals listed there;
    else, when keys in the allowed-signers file carry it (``rafael-roles``), by those
    keys; else it is taken as declared (signed and audited). ``key_roles`` None: the
    signing key is not known yet (checked again once it is)."""
    # Role names match however they are spelled (as approver names do).
    role = next((r for r in config.roles if r.casefold() == role.strip().casefold()), role)
    members = config.roles.get(role)
    if members is not None:
        if not any(same_actor(by, m) for m in members):
            raise PolicyError(
                f"{by!r} does not hold role {role!r} (holders: {', '.join(members) or 'none'})"
            )
        return
    wanted = role.strip().casefold()
    held = {r.casefold() for r in key_roles or ()}
    if key_roles is not None and wanted in file_roles and wanted not in held:
        raise PolicyError(
            f"the signing key does not hold role {role!r} in the allowed-signers file"
        )


def counted(approvals: Sequence[Approval], author: str) -> list[Approval]:
    """The approvals that count: signed, not by the author, one per key and per name."""
    valid: list[Approval] = []
    for a in approvals:
        if not a.signed or same_actor(a.by, author):
            continue
        if any(a.fingerprint == v.fingerprint or same_actor(a.by, v.by) for v in valid):
            continue
        valid.append(a)
    return valid


def unmet(
    req: Requirement,
    approvals: Sequence[Approval],
    author: str,
    evidence: Mapping[str, Any],
    config: GuardianConfig,
) -> list[str]:
    """What still stands between these approvals and adoption (empty: satisfied).

    Recomputed from the approvals themselves (not trusted from a stored flag), so the
    compliance checks can use it on stored data too. Only signed approvals count, one
    per key (see :func:`counted`); the guardian re-verifies their signatures before it
    adopts anything."""
    valid = counted(approvals, author)
    missing: list[str] = []
    if len(valid) < req.approvers:
        missing.append(f"{req.approvers - len(valid)} more approval(s) ({req.describe()})")
    if req.role and not any(
        (a.role or "").strip().casefold() == req.role.strip().casefold()
        and (
            req.role not in config.roles or any(same_actor(a.by, m) for m in config.roles[req.role])
        )
        for a in valid
    ):
        missing.append(f"an approver with role {req.role!r}")
    if req.needs_passing_evidence:
        ok, why = evidence_passes(evidence, config)
        if not ok:
            missing.append(f"passing chaos evidence ({why})")
    return missing
