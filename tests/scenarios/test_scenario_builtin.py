"""The built-in catalog: every file is valid, round-trips, and injects what its name says."""

from __future__ import annotations

import importlib.resources
from dataclasses import replace
from pathlib import Path

import pytest

from pytest_rafael.scenario.catalog import builtin_dir, load_catalog
from pytest_rafael.scenario.dump import dump_scenario, same_scenario
from pytest_rafael.scenario.loader import load_file, loads
from pytest_rafael.scenario.model import SEVERITIES, FaultSpec, Scenario

REPO = Path(__file__).resolve().parents[2]
REQUIRED = {
    "network_latency",
    "db_failure",
    "ddos",
    "memory_pressure",
    "cpu_spike",
    "cascading_failure",
    "flaky_network",
    "bandwidth_throttle",
    "slow_close",
    "data_truncation",
    "packet_fragmentation",
    "connection_timeout",
    "disk_pressure",
    "disk_full",
    "dns_outage",
    "dependency_exception",
    "clock_jump",
}
BUILTIN_FILES = sorted((REPO / "scenarios").glob("*.yaml"))


def _faults(scenario: Scenario, kind: str, type_: str | None = None) -> list[FaultSpec]:
    return [f for f in scenario.faults if f.kind == kind and (type_ is None or f.type == type_)]


@pytest.fixture(scope="module")
def catalog() -> dict[str, Scenario]:
    return load_catalog()


def test_builtin_dir_is_the_repository_folder_in_a_dev_install() -> None:
    assert builtin_dir() == REPO / "scenarios"


def test_builtin_dir_prefers_the_copy_inside_an_installed_wheel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    packaged = tmp_path / "_builtin_scenarios"
    packaged.mkdir()
    monkeypatch.setattr(importlib.resources, "files", lambda _pkg: tmp_path)
    assert builtin_dir() == packaged


def test_the_catalog_has_every_required_scenario_one_file_each(
    catalog: dict[str, Scenario],
) -> None:
    assert set(catalog) >= REQUIRED
    assert len(BUILTIN_FILES) == len(catalog) >= 13
    # one file per scenario, named after it, so reviewers find it
    assert {p.stem for p in BUILTIN_FILES} == set(catalog)


@pytest.mark.parametrize("path", BUILTIN_FILES, ids=lambda p: p.stem)
def test_each_builtin_file_loads_and_round_trips(path: Path) -> None:
    scenario = load_file(path)
    assert scenario.severity in SEVERITIES
    assert len(scenario.description.strip()) >= 20
    assert scenario.source == str(path)
    assert all(f.source.startswith(f"{path}:") for f in scenario.faults)
    again = loads(dump_scenario(scenario), "dumped")
    assert same_scenario(again, scenario)
    # Field by field too (FaultSpec equality also compares `source`, which differs).
    assert again.faults == tuple(
        replace(f, source=g.source) for f, g in zip(scenario.faults, again.faults, strict=True)
    )


def test_builtins_target_every_proxy_unless_their_purpose_names_one(
    catalog: dict[str, Scenario],
) -> None:
    named = {name: s.targets for name, s in catalog.items() if s.targets}
    assert named == {"db_failure": {"db"}, "cascading_failure": {"cache", "db"}}


def test_faults_fit_a_test_of_a_few_seconds(catalog: dict[str, Scenario]) -> None:
    for scenario in catalog.values():
        for fault in scenario.faults:
            end = fault.start_s + (fault.duration_s or 0)
            assert end <= 3.0, fault.source
            if fault.type == "latency":
                assert fault.attributes["latency"] <= 500, fault.source


def test_network_latency_adds_latency_with_jitter(catalog: dict[str, Scenario]) -> None:
    (fault,) = catalog["network_latency"].faults
    assert fault.type == "latency"
    assert fault.attributes["latency"] > 0
    assert fault.attributes["jitter"] > 0


def test_db_failure_breaks_only_db_for_part_of_the_call(catalog: dict[str, Scenario]) -> None:
    faults = catalog["db_failure"].faults
    assert {f.target for f in faults} == {"db"}
    assert {f.type or f.kind for f in faults} <= {"reset_peer", "down"}
    assert all(f.duration_s is not None for f in faults), "the database must come back"


def test_ddos_floods_network_and_cpu(catalog: dict[str, Scenario]) -> None:
    ddos = catalog["ddos"]
    (flood,) = _faults(ddos, "flood")
    assert flood.target == "*"
    assert flood.attributes["rate"] >= 100
    assert _faults(ddos, "toxic", "bandwidth")
    assert _faults(ddos, "toxic", "latency")
    assert _faults(ddos, "stress", "cpu")


@pytest.mark.parametrize(
    ("name", "stress"),
    [("memory_pressure", "memory"), ("cpu_spike", "cpu"), ("disk_pressure", "disk")],
)
def test_stress_scenarios(catalog: dict[str, Scenario], name: str, stress: str) -> None:
    (fault,) = catalog[name].faults
    assert (fault.kind, fault.type) == ("stress", stress)
    if stress == "memory":
        assert 64 <= fault.attributes["mb"] <= 512, "moderate, within the stressor's cap"


def test_cascading_failure_fails_targets_in_sequence(catalog: dict[str, Scenario]) -> None:
    faults = [f for f in catalog["cascading_failure"].faults if f.target != "*"]
    assert [f.target for f in faults] == ["cache", "db"]
    cache, db = faults
    assert 0 < cache.start_s < db.start_s
    assert cache.duration_s
    assert db.duration_s


def test_flaky_network_resets_only_some_connections(catalog: dict[str, Scenario]) -> None:
    resets = _faults(catalog["flaky_network"], "toxic", "reset_peer")
    assert resets
    assert all(0 < f.toxicity < 1 for f in resets)


@pytest.mark.parametrize(
    ("name", "toxic"),
    [
        ("bandwidth_throttle", "bandwidth"),
        ("slow_close", "slow_close"),
        ("data_truncation", "limit_data"),
        ("packet_fragmentation", "slicer"),
        ("connection_timeout", "timeout"),
    ],
)
def test_single_toxic_scenarios(catalog: dict[str, Scenario], name: str, toxic: str) -> None:
    assert {f.type for f in catalog[name].faults} == {toxic}
