"""Moved; this module keeps the old import path working. The code lives in

- :mod:`pytest_rafael.scenario.model`
"""

from __future__ import annotations

from pytest_rafael.scenario.model import (
    FAULT_KINDS,
    INPROCESS_KINDS,
    SEVERITIES,
    STREAMS,
    STRESS_TYPES,
    TOXIC_TYPES,
    FaultSpec,
    Scenario,
    ScenarioError,
    is_address,
)

__all__ = [
    "FAULT_KINDS",
    "INPROCESS_KINDS",
    "SEVERITIES",
    "STREAMS",
    "STRESS_TYPES",
    "TOXIC_TYPES",
    "FaultSpec",
    "Scenario",
    "ScenarioError",
    "is_address",
]
