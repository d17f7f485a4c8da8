"""Sample genomes and evidence for the guardian tests."""

from __future__ import annotations

from typing import Any


def genome(generation: int = 1, **retry: Any) -> dict[str, Any]:
    params = {
        "max_attempts": 3,
        "base_delay": 0.05,
        "max_delay": 1.0,
        "multiplier": 2.0,
        "jitter": 0.1,
    }
    params.update(retry)
    return {"generation": generation, "genes": {"retry": params}}


def evidence(
    severity: str = "low", success_rate: float = 0.9, base: float = 0.5, best: float = 0.7
) -> dict[str, Any]:
    return {
        "run_id": "run-1",
        "tests": [
            {
                "nodeid": "tests/test_pay.py::test_charge",
                "scenario": "slow_network",
                "severity": severity,
                "baseline_fitness": base,
                "best_fitness": best,
                "success_rate": success_rate,
                "iterations": 5,
            }
        ],
    }
