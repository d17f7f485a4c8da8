"""Properties for ``--junitxml``: the plugin appends them to each test case's
``user_properties`` so CI test views show fitness and scenario next to the outcome."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pytest_rafael.report.model import best_fitness, iterations, num, shipped_fitness, success_rate


def junit_properties(test: Mapping[str, Any]) -> list[tuple[str, object]]:
    """For a test entry of results.json (all iterations of one test and scenario)."""
    props: list[tuple[str, object]] = [("rafael_scenario", str(test.get("scenario", "")))]
    if test.get("module"):
        props.append(("rafael_module", str(test["module"])))
    # rafael_fitness is what ships, as in metrics.prom and the gate; a candidate's
    # figure is named as one.
    for name, value in (
        ("rafael_fitness", shipped_fitness(test)),
        ("rafael_baseline_fitness", shipped_fitness(test)),
        ("rafael_candidate_fitness", best_fitness(test)),
        ("rafael_success_rate", success_rate(test)),
    ):
        if value is not None:
            props.append((name, round(value, 6)))
    props.append(("rafael_iterations", len(iterations(test))))
    if test.get("proposal_id"):
        props.append(("rafael_proposal", str(test["proposal_id"])))
    return props


def iteration_junit_properties(
    iteration: Mapping[str, Any], scenario: str
) -> list[tuple[str, object]]:
    """For one iteration's test case (when each iteration is its own pytest item)."""
    props: list[tuple[str, object]] = [
        ("rafael_scenario", scenario),
        ("rafael_iteration", iteration.get("index")),
    ]
    fitness = num(iteration.get("fitness"))
    if fitness is not None:
        props.append(("rafael_fitness", round(fitness, 6)))
    return props
