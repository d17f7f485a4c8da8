"""The scenario schema agrees with the parts that execute it: the embedded Toxiproxy
server's toxic table and the stressors' attribute validation."""

from __future__ import annotations

from typing import Any

import pytest

from pytest_rafael.faults.stress_limits import KINDS, StressLimits, normalize_attributes
from pytest_rafael.scenario.attributes import STRESS_ATTRIBUTES, TOXIC_ATTRIBUTES
from pytest_rafael.scenario.catalog import load_catalog
from pytest_rafael.scenario.model import STRESS_TYPES, TOXIC_TYPES, FaultSpec
from pytest_rafael.toxiproxy.toxics import TOXIC_TYPES as SERVER_TOXICS


def test_toxic_types_and_attribute_names_match_the_server() -> None:
    assert set(TOXIC_ATTRIBUTES) == set(TOXIC_TYPES)
    for type_, attributes in TOXIC_ATTRIBUTES.items():
        assert set(attributes) == set(SERVER_TOXICS[type_]), type_


def test_stress_types_and_attribute_names_match_the_stressors() -> None:
    assert set(STRESS_ATTRIBUTES) == set(STRESS_TYPES) == set(KINDS)
    for type_, attributes in STRESS_ATTRIBUTES.items():
        # every name the stressor knows is allowed in a file, and no other
        assert set(attributes) == set(normalize_attributes(type_, _minimal(type_))), type_


def _minimal(type_: str) -> dict[str, Any]:
    """The required attributes of a stressor type (cpu has none)."""
    return {"mb": 1} if type_ in ("memory", "disk") else {}


@pytest.mark.parametrize(
    "fault",
    [f for s in load_catalog().values() for f in s.faults if f.kind == "stress"],
    ids=lambda f: f.source.rsplit("/", 1)[-1],
)
def test_builtin_stress_faults_pass_the_stressors_own_checks(fault: FaultSpec) -> None:
    # Default limits: memory capped at a share of what is available, disk at 512 MB.
    assert fault.type is not None
    normalized = normalize_attributes(fault.type, dict(fault.attributes), StressLimits())
    assert normalized.items() >= dict(fault.attributes).items()
