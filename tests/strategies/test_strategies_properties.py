"""Properties of the strategies: everything drawn is a valid scenario, within bounds."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from pytest_rafael.genome.genes import CATALOG
from pytest_rafael.genome.genome import Genome
from pytest_rafael.genome.mutation import mutate
from pytest_rafael.scenario.attributes import STRESS_ATTRIBUTES, TOXIC_ATTRIBUTES
from pytest_rafael.scenario.dump import dump_scenario, same_scenario
from pytest_rafael.scenario.fault_strategies import faults
from pytest_rafael.scenario.loader import loads
from pytest_rafael.scenario.model import FaultSpec, Scenario
from pytest_rafael.scenario.schedule_model import FaultSchedule, fault_from_dict, fault_to_dict
from pytest_rafael.scenario.strategies import fault_schedules, genomes

EVERYTHING = fault_schedules(
    targets=["db", "cache", "*"],
    stress=("cpu", "memory", "disk"),
    down=True,
    toxicity=(0.5, 1.0),
    bounds={
        "latency": {"jitter": (0, 100)},
        "slicer": {"size_variation": (0, 64)},
        "disk": {"block_kb": (1, 128)},
    },
)


@settings(max_examples=80, suppress_health_check=[HealthCheck.too_slow])
@given(schedule=EVERYTHING)
def test_every_schedule_is_a_valid_scenario_that_round_trips(schedule: FaultSchedule) -> None:
    if not schedule:
        with pytest.raises(ValueError, match="empty fault schedule"):
            schedule.to_scenario("x")
        return
    scenario = schedule.to_scenario("drawn")
    again = loads(dump_scenario(scenario), "<drawn>")
    assert same_scenario(again, scenario)
    assert FaultSchedule.from_dicts(schedule.to_dicts()).to_dicts() == schedule.to_dicts()


@given(fault=faults(["db"], stress=("cpu", "memory", "disk"), down=True))
def test_fault_dicts_round_trip(fault: FaultSpec) -> None:
    assert fault_to_dict(fault_from_dict(fault_to_dict(fault))) == fault_to_dict(fault)


@given(schedule=EVERYTHING)
def test_schedules_stay_within_the_loader_schema_and_limits(schedule: FaultSchedule) -> None:
    assert len(schedule) <= 4
    for fault in schedule:
        schema = (TOXIC_ATTRIBUTES if fault.kind == "toxic" else STRESS_ATTRIBUTES).get(
            str(fault.type), {}
        )
        for key, value in fault.attributes.items():
            assert schema[key].minimum <= value <= schema[key].maximum
        assert 0 <= fault.start_s <= 0.5
        assert fault.duration_s is None or 0 < fault.duration_s <= 2.0
        assert 0.5 <= fault.toxicity <= 1.0


@given(
    schedule=fault_schedules(
        targets=["db"],
        toxics=("latency", "limit_data"),
        bounds={"latency": {"latency": (100, 400, 100)}, "limit_data": {"bytes": (10, 20)}},
        max_start_s=0,
        max_duration_s=0,
        min_faults=1,
    )
)
def test_user_bounds_types_and_timing_are_respected(schedule: FaultSchedule) -> None:
    assert 1 <= len(schedule) <= 4
    for fault in schedule:
        assert fault.target == "db"
        assert fault.start_s == 0
        assert fault.duration_s is None
        if fault.type == "latency":
            assert fault.attributes["latency"] in (100, 200, 300, 400)
        else:
            assert fault.type == "limit_data"
            assert 10 <= fault.attributes["bytes"] <= 20


@given(schedule=fault_schedules(targets=["db"]))
def test_timing_attributes_avoid_round_number_thresholds(schedule: FaultSchedule) -> None:
    for fault in schedule:
        for ms in (fault.start_s * 1000, (fault.duration_s or 0) * 1000):
            assert ms == 0 or round(ms) % 50 == 25
        if fault.type == "latency":
            assert fault.attributes["latency"] in (0, *range(25, 2001, 50))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"toxics": ("latency", "lag")}, "unknown type 'lag'"),
        ({"bounds": {"latency": {"latency": (500, 100)}}}, "above high"),
        ({"bounds": {"latency": {"latency": (-1, 100)}}}, "outside what a scenario allows"),
        ({"bounds": {"latency": {"lat": (0, 100)}}}, "unknown attribute 'lat'"),
        ({"bounds": {"lag": {"x": 1}}}, "unknown fault type 'lag'"),
        ({"bounds": {"bandwidth": {"rate": (0, 10)}}}, "outside"),
        ({"targets": ["db one"]}, "not a proxy name"),
        ({"max_faults": 1, "min_faults": 2}, "min_faults"),
        ({"toxics": (), "stress": ()}, "nothing to draw"),
        ({"toxicity": (0.5, 2)}, "toxicity"),
        ({"scenario": "no_such_scenario"}, "unknown scenario"),
    ],
)
def test_bad_arguments_are_one_line_errors(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidArgument, match=message) as info:
        fault_schedules(**kwargs).example()
    assert "\n" not in str(info.value)


BASE = Scenario(
    "base",
    "two faults",
    "high",
    (
        FaultSpec("toxic", "db", "latency", attributes={"latency": 300, "jitter": 20}),
        FaultSpec("down", "*", start_s=0.5, duration_s=1.0),
        FaultSpec("stress", "*", "cpu", attributes={"percent": 40}),
    ),
)


@given(schedule=fault_schedules(scenario=BASE, targets=["postgres"]))
def test_schedules_vary_around_a_scenario(schedule: FaultSchedule) -> None:
    kinds = [f.kind for f in schedule]
    assert kinds == [k for k in ("toxic", "down", "stress") if k in kinds]  # order kept
    for fault in schedule:
        if fault.kind == "toxic":
            assert fault.target == "postgres"
            assert fault.type == "latency"
            assert 0 <= fault.attributes["latency"] <= 600
            assert 0 <= fault.attributes["jitter"] <= 40
            assert fault.start_s == 0
            assert fault.duration_s is None
        elif fault.kind == "down":
            assert fault.target == "postgres"
            assert 0 <= fault.start_s <= 1.0
            assert fault.duration_s is None or fault.duration_s <= 2.0
        else:
            assert fault.target == "*"
            assert 1 <= fault.attributes["percent"] <= 80
    if schedule:
        loads(dump_scenario(schedule.to_scenario("varied")))


@given(schedule=fault_schedules(scenario="db_failure"))
def test_a_builtin_scenario_by_name(schedule: FaultSchedule) -> None:
    assert all(f.target == "db" for f in schedule if f.kind in ("toxic", "down"))


@given(genome=genomes("payments", genes=tuple(CATALOG), bounds={"retry": {"max_attempts": (1, 4)}}))
def test_genomes_are_valid_and_within_bounds(genome: Genome) -> None:
    again = Genome.from_dict("payments", genome.to_dict())
    assert again.id == genome.id
    for kind, gene in genome.genes.items():
        for spec in CATALOG[kind]:
            value = gene.params[spec.name]
            if spec.type in ("int", "float"):
                assert spec.low is not None
                assert spec.high is not None
                assert spec.low <= value <= spec.high
    if "retry" in genome.genes:
        assert genome.genes["retry"]["max_attempts"] <= 4


@given(genome=genomes("payments"), seed=st.integers(0, 2**32 - 1))
def test_mutants_stay_within_the_catalog_bounds(genome: Genome, seed: int) -> None:
    mutant = mutate(genome, random.Random(seed))
    Genome.from_dict("payments", mutant.to_dict())  # validates every parameter
    for kind, gene in mutant.genes.items():
        for spec in CATALOG[kind]:
            if spec.type in ("int", "float"):
                assert spec.low is not None
                assert spec.high is not None
                assert spec.low <= gene.params[spec.name] <= spec.high


def test_describe_is_readable() -> None:
    schedule = FaultSchedule.of(
        FaultSpec("toxic", "db", "latency", attributes={"latency": 125}),
        FaultSpec("toxic", "db", "limit_data", "upstream", 0.5, {"bytes": 1}, 0.075, 0.225),
        FaultSpec("stress", "*", "memory", attributes={"mb": 64}),
    )
    assert schedule.describe().splitlines() == [
        "Fault schedule (3 faults):",
        "  1. latency on 'db' (downstream): latency=125ms, for the whole block",
        "  2. limit_data on 'db' (upstream) with toxicity 0.5: bytes=1B, from 0.075s for 0.225s",
        "  3. memory stress: mb=64MB, for the whole block",
    ]
    assert str(FaultSchedule()) == "Fault schedule: no faults"
    failing = "Fault schedule: no faults (the code fails without any chaos)"
    assert FaultSchedule().describe(failing=True) == failing
    assert "latency on 'db'" in repr(schedule)
    # At 0 (left out of the attributes) these two mean the most, so it is spelled out.
    held = FaultSchedule.of(
        FaultSpec("toxic", "kv", "timeout"), FaultSpec("toxic", "kv", "reset_peer")
    )
    assert held.describe().splitlines()[1:] == [
        "  1. timeout on 'kv' (downstream): timeout=0ms (holds the data, never closes), "
        "for the whole block",
        "  2. reset_peer on 'kv' (downstream): timeout=0ms (resets at once), for the whole block",
    ]
    late = FaultSpec("toxic", "kv", "timeout", attributes={"timeout": 500})
    assert "timeout=500ms, for" in FaultSchedule.of(late).describe()


def _drawn(strategy: st.SearchStrategy[FaultSpec], count: int) -> list[FaultSpec]:
    """``count`` faults drawn by Hypothesis itself (seeded, generation only)."""
    from hypothesis import Phase, seed

    found: list[FaultSpec] = []

    @seed(20261207)
    @settings(
        max_examples=count,
        phases=[Phase.generate],
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def draw(fault: FaultSpec) -> None:
        found.append(fault)

    draw()
    return found


def test_sizes_are_drawn_at_every_scale_and_times_also_uniformly() -> None:
    # A cut inside a short message (a 4-byte GET, a 7-byte ack) is where byte-count
    # bugs are. Designed: 43 % of limit_data cuts within 10 bytes (uniform over
    # 0..65536: 0.02 %; log-scaled over the whole range: 26 %) and 57 % of slices
    # under 16 bytes. Times keep their uniform half.
    cuts = [f.attributes.get("bytes", 0) for f in _drawn(faults(["db"], ["limit_data"]), 800)]
    small = sum(1 for size in cuts if size <= 10) / len(cuts)
    assert small >= 0.35, f"only {small:.0%} of limit_data cuts within 10 bytes"
    assert sum(1 for size in cuts if 4 <= size <= 10) / len(cuts) >= 0.08, "inside a message"
    assert max(cuts) > 16_384, "sizes still reach the top of their range"
    pieces = [f.attributes["average_size"] for f in _drawn(faults(["db"], ["slicer"]), 400)]
    assert sum(1 for size in pieces if size < 16) / len(pieces) >= 0.45
    delays = [f.attributes.get("latency", 0) for f in _drawn(faults(["db"], ["latency"]), 400)]
    assert sum(1 for ms in delays if ms >= 1000) / len(delays) >= 0.12, "times stay half uniform"


@pytest.mark.parametrize("seed_", [1, 2])
def test_every_generated_run_is_a_fresh_draw_not_a_pasted_copy(seed_: int) -> None:
    # After each example Hypothesis runs copies with one span pasted over another span of
    # the same label. When a schedule's flags, streams and latencies shared labels, five
    # runs in six were such copies, and what ran drifted from the layout: on these seeds
    # 74-75 % of faults on downstream (designed: two in three) and, on seed 2, one
    # latency value in 31 % of latencies. Every choice has a label of its own now.
    from collections import Counter

    from hypothesis import Phase, seed

    drawn: list[FaultSchedule] = []

    @seed(seed_)
    @settings(
        max_examples=300,
        phases=[Phase.generate],
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(fault_schedules(targets=["db"]))
    def draw(schedule: FaultSchedule) -> None:
        drawn.append(schedule)

    draw()
    faults_ = [f for schedule in drawn for f in schedule]
    downstream = sum(1 for f in faults_ if f.stream == "downstream") / len(faults_)
    assert 0.62 <= downstream <= 0.71, f"{downstream:.0%} of faults on downstream"
    latencies = Counter(f.attributes["latency"] for f in faults_ if f.type == "latency")
    top = latencies.most_common(1)[0][1] / sum(latencies.values())
    assert top <= 0.2, f"one latency value in {top:.0%} of latencies: {latencies.most_common(3)}"


@pytest.mark.parametrize("streams", ["upstream", ("upstream",)])
def test_one_stream_is_given_like_one_toxic(streams: Any) -> None:
    drawn = _drawn(faults(["db"], "latency", streams=streams), 30)
    assert {f.stream for f in drawn} == {"upstream"}
    with pytest.raises(InvalidArgument, match="streams: expected some of"):
        faults(["db"], streams="sideways")
