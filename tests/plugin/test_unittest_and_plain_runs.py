"""The chaos marker on unittest.TestCase methods, the evidence a chance fault needs, and
plain runs that leave the chaos report alone."""

from __future__ import annotations

import pytest
from rafael_plugin_helpers import read_results, write_scenario

DOWN = """
name: dep_down
description: the dependency refuses connections
severity: high
faults:
  - kind: down
    target: api
"""

COIN = """
name: coin
description: half the connections are reset
severity: medium
faults:
  - kind: toxic
    target: api
    type: reset_peer
    toxicity: 0.5
    attributes: {timeout: 0}
"""


def test_the_marker_runs_iterations_with_faults_on_a_testcase(project: pytest.Pytester) -> None:
    write_scenario(project.path / "scen", "dep_down", DOWN)
    project.makepyfile("""
        import socket
        import unittest

        import pytest


        class TestInventory(unittest.TestCase):
            @pytest.fixture(autouse=True)
            def _proxy(self, chaos_proxy, echo):
                self.api = chaos_proxy("api", echo.address)

            @pytest.mark.chaos("dep_down", iterations=2)
            def test_lookup(self):
                socket.create_connection((self.api.host, self.api.port), timeout=2).close()

            def test_plain(self):
                self.assertTrue(True)
    """)
    result = project.runpytest_subprocess("--rafael-chaos", "--rafael-scenarios=scen", "-v")
    result.stdout.fnmatch_lines(
        [
            "*TestInventory::test_lookup[[]dep_down-nofault[]] PASSED*",
            "*TestInventory::test_lookup[[]dep_down-it0[]] FAILED*",
            "*TestInventory::test_lookup[[]dep_down-it1[]] FAILED*",
            "*TestInventory::test_plain PASSED*",
        ]
    )
    (test,) = read_results(project)["tests"]
    assert test["nodeid"].endswith("TestInventory::test_lookup")
    assert [i["outcome"] for i in test["iterations"]] == ["failed", "failed"]
    assert all("ConnectionRefusedError" in i["error"] for i in test["iterations"])
    assert all(i["faults"][0]["type"] == "down" for i in test["iterations"])
    # without chaos it runs once, as any test does
    plain = project.runpytest_subprocess("--rafael-scenarios=scen")
    plain.assert_outcomes(passed=2)


def test_a_bad_marker_on_a_testcase_is_one_line(project: pytest.Pytester) -> None:
    project.makepyfile("""
        import unittest
        import pytest

        class T(unittest.TestCase):
            @pytest.mark.chaos("no_such_scenario")
            def test_x(self):
                pass
    """)
    result = project.runpytest_subprocess("--rafael-chaos")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*T::test_x: @pytest.mark.chaos: unknown scenario*"])
    assert "Traceback" not in result.stderr.str() + result.stdout.str()


def test_a_chance_fault_measures_the_shipped_genome_three_times(project: pytest.Pytester) -> None:
    write_scenario(project.path / "scen", "coin", COIN)
    project.makepyfile("""
        import pytest
        from pytest_rafael import antifragile

        @antifragile("svc")
        def call(rt, api):
            return rt(api.host, api.port)

        @pytest.mark.chaos("coin", module="svc")
        def test_coin(chaos_proxy, echo, rt):
            api = chaos_proxy("api", echo.address)
            for _ in range(3):
                try:
                    call(rt, api)
                except OSError:
                    pass
    """)
    (project.path / "rafael.genome.yaml").write_text("svc:\n  generation: 0\n  genes: {}\n")
    project.runpytest_subprocess(
        "--rafael-chaos", "--rafael-scenarios=scen", "--rafael-iterations=5"
    )
    (test,) = read_results(project)["tests"]
    shipped = [i["index"] for i in test["iterations"] if i["genome"] == test["baseline_genome"]]
    assert shipped[:3] == [0, 2, 4]
    assert test["baseline_n"] == 3
    assert test["samples_needed"] == 3
    # one iteration is not enough for a verdict on a chance fault
    result = project.runpytest_subprocess(
        "--rafael-chaos",
        "--rafael-scenarios=scen",
        "--rafael-iterations=1",
        "--rafael-min-fitness=0",
    )
    assert result.ret == 1
    (failure,) = read_results(project)["gate"]["failures"]
    assert "only 1 measurement(s) of the shipped genome" in failure


def test_a_plain_run_leaves_the_chaos_report_and_history_alone(
    project: pytest.Pytester,
) -> None:
    write_scenario(project.path / "scen", "dep_down", DOWN)
    project.makepyfile(
        test_chaos="""
        import pytest

        @pytest.mark.chaos("dep_down", iterations=1)
        def test_up(chaos_proxy, echo):
            chaos_proxy("api", echo.address)
    """
    )
    project.makepyfile(
        test_hypo="""
        import pytest
        from hypothesis import HealthCheck, Phase, given, settings
        from pytest_rafael.scenario.strategies import fault_schedules

        @pytest.fixture
        def api(chaos_proxy, echo):
            return chaos_proxy("api", echo.address)

        @settings(max_examples=5, deadline=None, derandomize=True, database=None,
                  suppress_health_check=[HealthCheck.function_scoped_fixture],
                  # No explain phase: it replays hundreds of variations of the failure.
                  phases=[Phase.generate, Phase.shrink])
        # One latency, one stream, nothing else to draw: the failure needs no shrinking
        # (each shrink step would be a 0.3 s run).
        @given(schedule=fault_schedules(targets=["api"], toxics=("latency",),
                                        streams=("downstream",),
                                        bounds={"latency": {"latency": 300}},
                                        max_start_s=0, max_duration_s=0, max_faults=1))
        def test_fast(schedule, chaos, api, rt):
            with chaos.apply(schedule):
                assert rt(api.host, api.port) < 0.2
    """
    )
    project.runpytest_subprocess("--rafael-chaos", "--rafael-scenarios=scen", "test_chaos.py")
    report = project.path / "reports" / "index.html"
    before = report.read_bytes()
    runs_before = read_results(project)["run_id"]
    plain = project.runpytest_subprocess("--rafael-scenarios=scen", "test_hypo.py")
    plain.assert_outcomes(failed=1)
    assert report.read_bytes() == before
    assert read_results(project)["run_id"] == runs_before
    from pytest_rafael.store.core import Store

    with Store(project.path / ".rafael" / "rafael.db") as store:
        assert [r["run_id"] for r in store.runs()] == [runs_before]
    assert (project.path / "reports" / "hypothesis" / "failures.json").exists()
