"""Swarm fault selection: each example enables a subset of fault types and targets, so
bugs that other faults would mask show up more often, and failures still shrink to the
faults they need."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, Phase, find, given, seed, settings
from hypothesis.errors import InvalidArgument

from pytest_rafael.scenario.schedule_model import FaultSchedule
from pytest_rafael.scenario.strategies import fault_schedules

# No explain phase in `find`: it only annotates a report, and replaying variations of a
# schedule took half of each search's time.
NO_EXPLAIN = tuple(p for p in Phase if p is not Phase.explain)


def share_on_one_target(swarm: bool, examples: int = 150) -> float:
    """Among drawn schedules of two faults or more, the share aimed at a single proxy
    (where combinations on one dependency, a slow *and* truncated reply, live)."""
    multi = single = 0

    @seed(7)
    @settings(
        max_examples=examples,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(fault_schedules(targets=["a", "b", "c"], swarm=swarm))
    def sample(schedule: FaultSchedule) -> None:
        nonlocal multi, single
        if len(schedule) >= 2:
            multi += 1
            single += len({f.target for f in schedule}) == 1

    sample()
    return single / multi


def test_swarm_concentrates_an_example_on_a_subset_of_targets() -> None:
    swarm, plain = share_on_one_target(True), share_on_one_target(False)
    assert swarm > 2 * plain, (swarm, plain)


def test_swarm_failures_shrink_to_the_faults_they_need() -> None:
    def bug(schedule: FaultSchedule) -> bool:
        return any(
            f.type == "latency" and f.target == "b" and f.attributes["latency"] >= 300
            for f in schedule
        ) and any(f.type == "reset_peer" and f.target == "b" for f in schedule)

    found = find(
        fault_schedules(targets=["a", "b", "c"], max_start_s=0, max_duration_s=0, swarm=True),
        bug,
        settings=settings(max_examples=1000, database=None, deadline=None, phases=NO_EXPLAIN),
        random=random.Random(3),
    )
    assert sorted((f.type, f.target) for f in found) == [("latency", "b"), ("reset_peer", "b")]
    assert next(f for f in found if f.type == "latency").attributes["latency"] in (325, 350)


def test_swarm_checks_its_arguments() -> None:
    with pytest.raises(InvalidArgument, match="min_faults"):
        fault_schedules(targets=["a"], toxics=["latency"], min_faults=4, swarm=True).validate()


def test_swarm_draws_in_process_faults_given_as_extra() -> None:
    from pytest_rafael.scenario.schedule_model import fault_from_dict

    boom = fault_from_dict({"kind": "raise", "target": "app.db:query", "error": "TimeoutError"})
    found = find(
        fault_schedules(targets=["db"], swarm=True, extra=[boom]),
        lambda s: any(f.kind == "raise" for f in s) and any(f.target == "db" for f in s),
        settings=settings(database=None, deadline=None, max_examples=500, phases=NO_EXPLAIN),
        random=random.Random(0),
    )
    assert sorted(f.kind for f in found) == ["raise", "toxic"] or sorted(f.kind for f in found) == [
        "down",
        "raise",
    ]
