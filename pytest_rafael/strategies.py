"""Moved; this module keeps the old import path working. The code lives in

- :mod:`pytest_rafael.scenario.strategies`
"""

from __future__ import annotations

from pytest_rafael.scenario.strategies import (
    DEFAULT_BOUNDS,
    STREAM_ORDER,
    ChaosStateMachine,
    fault_schedules,
    faults,
    genomes,
)

__all__ = [
    "DEFAULT_BOUNDS",
    "STREAM_ORDER",
    "ChaosStateMachine",
    "fault_schedules",
    "faults",
    "genomes",
]
