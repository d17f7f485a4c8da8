"""Impact assessment of an adoption proposal: how much could this change hurt?

The level is the highest of several independent signals, each of which leaves a reason:

* size of parameter changes: the largest relative change of a numeric gene parameter
  (``|new - old| / |old|``, as docs/guardian.md defines it) against
  ``change_thresholds`` (default: above 25% medium, above 100% high); a changed
  non-numeric value counts as medium;
* a numeric parameter cut to a tenth of its magnitude or less: high (a decrease never
  exceeds 100% by that measure, yet a timeout cut from 5.5 s to 4 ms breaks everything);
* genes or parameters added or removed: medium (behaviour appears or disappears);
* a module's first genome: medium (the module ran bare until now);
* the module's declared criticality (``modules = {payments = {criticality = ...}}``);
* the severity of the scenarios in the evidence: a critical scenario makes it at least
  high, a high one at least medium;
* evidence that the candidate scores below the baseline: high;
* a chaos test of the module on which the candidate was never measured: high (nobody
  knows what it does there).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pytest_rafael.guardian.config import LEVELS, GuardianConfig

_RANK = {level: i for i, level in enumerate(LEVELS)}
# A parameter cut to 1/CUT_FACTOR of its magnitude or less is high impact, whatever its
# relative change (which stays below 100% for any cut).
CUT_FACTOR = 10.0
# Scenario severity -> the impact level it raises a proposal to, at least.
_SEVERITY_FLOOR = {"critical": "high", "high": "medium"}


@dataclass(frozen=True)
class ImpactAssessment:
    level: str
    reasons: tuple[str, ...]


def max_level(*levels: str) -> str:
    return max(levels, key=lambda lv: _RANK[lv])


def _genes(genome: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
    if not genome:
        return {}
    genes = genome.get("genes") or {}
    return {str(k): dict(v or {}) for k, v in genes.items()} if isinstance(genes, Mapping) else {}


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _relative_change(x: float, y: float) -> float:
    """``|y - x| / |x|``: the change relative to the value that ships (7 -> 3 is 57%,
    3 -> 7 is 133%); infinite from zero."""
    if x == 0:
        return 0.0 if y == 0 else math.inf
    return abs(y - x) / abs(x)


class _Levels:
    """The level reached so far and every reason given for it, in order."""

    def __init__(self) -> None:
        self.level = "low"
        self.reasons: list[str] = []

    def raise_to(self, new: str, reason: str) -> None:
        self.level = max_level(self.level, new)
        self.reasons.append(f"{new}: {reason}")


def assess_impact(
    module: str,
    baseline: Mapping[str, Any] | None,
    candidate: Mapping[str, Any],
    evidence: Mapping[str, Any],
    config: GuardianConfig,
) -> ImpactAssessment:
    levels = _Levels()
    raise_to, reasons = levels.raise_to, levels.reasons
    old, new = _genes(baseline), _genes(candidate)
    if baseline is None:
        raise_to("medium", f"first genome for module {module!r} (it ran without one)")
    added = sorted(set(new) - set(old))
    removed = sorted(set(old) - set(new))
    if added and baseline is not None:
        raise_to("medium", f"genes added: {', '.join(added)}")
    if removed:
        raise_to("medium", f"genes removed: {', '.join(removed)}")
    largest = _largest_change(levels, old, new)
    if largest is not None:
        change, what = largest
        pct = "from zero" if math.isinf(change) else f"{change:.0%}"
        medium_at = config.change_thresholds["medium"]
        high_at = config.change_thresholds["high"]
        if change > high_at:
            raise_to("high", f"largest parameter change {what} ({pct} > {high_at:.0%})")
        elif change > medium_at:
            raise_to("medium", f"largest parameter change {what} ({pct} > {medium_at:.0%})")
        else:
            reasons.append(f"low: largest parameter change {what} ({pct})")
    elif not added and not removed and baseline is not None:
        reasons.append("low: no gene parameter changed")
    if baseline is not None and baseline.get("idempotent") != candidate.get("idempotent"):
        # It decides what a retry may re-send: declaring a write idempotent that is not
        # turns one cut reply into duplicates.
        raise_to(
            "high",
            f"idempotent declaration {baseline.get('idempotent')!r} -> "
            f"{candidate.get('idempotent')!r} (what a retry may re-send)",
        )
    policy = config.module(module)
    if policy.criticality != "low":
        raise_to(policy.criticality, f"module {module!r} is declared {policy.criticality}")
    if "pci" in policy.tags:
        raise_to("high", f"module {module!r} is tagged pci (cardholder data)")
    _judge_evidence(levels, evidence.get("tests") or [])
    # Keep the reasons that decided the level first: reviewers read the top line.
    reasons.sort(key=lambda r: -_RANK.get(r.split(":", 1)[0], 0))
    return ImpactAssessment(levels.level, tuple(dict.fromkeys(reasons)))


def _largest_change(
    levels: _Levels, old: Mapping[str, Any], new: Mapping[str, Any]
) -> tuple[float, str] | None:
    """The largest relative change of a numeric parameter of the genes both genomes
    have; parameters added, removed or changed in kind raise the level on the way."""
    largest: tuple[float, str] | None = None
    for kind in sorted(set(old) & set(new)):
        a, b = old[kind], new[kind]
        for param in sorted(set(a) | set(b)):
            where = f"{kind}.{param}"
            if param not in a or param not in b:
                levels.raise_to("medium", f"{where} {'added' if param not in a else 'removed'}")
                continue
            x, y = a[param], b[param]
            if x == y:
                continue
            if _is_number(x) and _is_number(y):
                if x != 0 and abs(y) * CUT_FACTOR <= abs(x):
                    levels.raise_to("high", f"{where} cut {x} -> {y} (to 1/{CUT_FACTOR:g} or less)")
                change = _relative_change(float(x), float(y))
                if largest is None or change > largest[0]:
                    largest = (change, f"{where} {x} -> {y}")
            else:
                levels.raise_to("medium", f"{where} changed {x!r} -> {y!r}")
    return largest


def _judge_evidence(levels: _Levels, tests: Sequence[Any]) -> None:
    raise_to = levels.raise_to
    for test in tests:
        severity = str(test.get("severity", "")).lower()
        floor = _SEVERITY_FLOOR.get(severity)
        if floor:
            raise_to(floor, f"scenario {test.get('scenario')!r} has severity {severity}")
        if test.get("measured") is False:
            raise_to(
                "high",
                f"candidate never measured on {test.get('nodeid')} [{test.get('scenario')}]",
            )
            continue
        base, best = test.get("baseline_fitness"), test.get("best_fitness")
        if _is_number(base) and _is_number(best) and best < base:
            raise_to(
                "high",
                f"candidate scores below baseline in {test.get('nodeid')} "
                f"[{test.get('scenario')}] ({best:.3f} < {base:.3f})",
            )
    if not tests:
        raise_to("medium", "no chaos evidence was supplied")
