"""The size of a parameter change is ``|new - old| / |old|``, as docs/guardian.md says."""

from __future__ import annotations

from typing import Any

from pytest_rafael.guardian import GuardianConfig
from pytest_rafael.guardian.impact import assess_impact


def _retry(attempts: int) -> dict[str, Any]:
    return {"module": "sessions", "genes": {"retry": {"max_attempts": attempts}}}


def _assess(old: int, new: int) -> tuple[str, tuple[str, ...]]:
    evidence = {"tests": [{"nodeid": "t.py::t", "scenario": "s", "severity": "low"}]}
    a = assess_impact("sessions", _retry(old), _retry(new), evidence, GuardianConfig())
    return a.level, a.reasons


def test_the_change_is_relative_to_the_old_value() -> None:
    level, reasons = _assess(7, 3)  # |3 - 7| / 7 = 57 %
    assert level == "medium"
    assert "medium: largest parameter change retry.max_attempts 7 -> 3 (57% > 25%)" in reasons
    level, reasons = _assess(3, 7)  # |7 - 3| / 3 = 133 %
    assert level == "high"
    assert "high: largest parameter change retry.max_attempts 3 -> 7 (133% > 100%)" in reasons


def test_a_tenfold_cut_is_high_although_below_100_percent() -> None:
    level, reasons = _assess(50, 5)  # 90 %, but a tenth of what ships
    assert level == "high"
    assert any(r.startswith("high: retry.max_attempts cut 50 -> 5") for r in reasons)


def test_flipping_the_idempotent_declaration_is_high() -> None:
    # It decides what a retry may re-send: a write declared idempotent duplicates.
    evidence = {"tests": [{"nodeid": "t.py::t", "scenario": "s", "severity": "low"}]}
    old = {**_retry(3), "idempotent": False}
    new = {**_retry(3), "idempotent": True}
    a = assess_impact("sessions", old, new, evidence, GuardianConfig())
    assert a.level == "high"
    assert a.reasons[0].startswith("high: idempotent declaration False -> True")
    same = assess_impact("sessions", new, new, evidence, GuardianConfig())
    assert same.level == "low"
