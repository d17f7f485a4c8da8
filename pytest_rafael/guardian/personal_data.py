"""Compliance controls on people: personal data kept out of the audit
trail (minimisation) and actors identified by name, not by a shared
account."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator, Mapping
from typing import Any

from pytest_rafael.guardian.actor import same_actor
from pytest_rafael.guardian.compliance_facts import Control, Facts, _limited
from pytest_rafael.guardian.integrity import IntegrityResult

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
