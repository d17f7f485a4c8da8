"""Chaos runs end to end: iterations, real faults observed by the code under test,
results.json, the gate, and errors that name what is wrong."""

from __future__ import annotations

import json

import pytest
from rafael_plugin_helpers import read_results, write_scenario


def test_each_scenario_runs_n_iterations_with_fresh_fixtures(project: pytest.Pytester) -> None:
    project.makepyfile("""
        import pytest

        MADE = []

        @pytest.fixture
        def fresh():
            MADE.append(len(MADE))
            return []

        @pytest.mark.chaos("cpu_spike", "memory_pressure", iterations=3)
        def test_marked(chaos, fresh):
            assert chaos.active is not chaos.reference
            assert chaos.iterations == 3
            assert fresh == []          # a new fixture value each iteration
            fresh.append(chaos.iteration)
            chaos.record(answer=42, made=len(MADE))
    """)
    result = project.runpytest_subprocess("--rafael-chaos", "-v", "--rafael-seed", "7")
    result.assert_outcomes(passed=8)  # 3 iterations and a reference run without faults
    result.stdout.fnmatch_lines(
        [
            "*test_marked?cpu_spike-nofault? PASSED*",
            "*test_marked?cpu_spike-it0? PASSED*",
            "*test_marked?cpu_spike-it2? PASSED*",
            "*test_marked?memory_pressure-it1? PASSED*",
            "*RAFAEL*",
            "*test_marked ?cpu_spike?*shipped passed 3/3 (100%)*",
        ]
    )
    results = read_results(project)
    assert results["schema"] == "rafael.results/1"
    assert results["seed"] == 7
    assert results["chaos"] is True
    tests = {t["scenario"]: t for t in results["tests"]}
    assert set(tests) == {"cpu_spike", "memory_pressure"}
    for t in tests.values():
        assert t["nodeid"].endswith("test_marked")
        assert [i["index"] for i in t["iterations"]] == [0, 1, 2]
        assert all(i["metrics"]["answer"] == 42 for i in t["iterations"])
        assert all(i["outcome"] == "passed" for i in t["iterations"])
    made = [i["metrics"]["made"] for t in tests.values() for i in t["iterations"]]
    # the fixture ran once per item: references made 1 and 5, the iterations the rest
    assert sorted(made) == [2, 3, 4, 6, 7, 8]
    assert all(t["reference"]["outcome"] == "passed" for t in tests.values())
    cpu = tests["cpu_spike"]["iterations"][0]["faults"][0]
    assert cpu["kind"] == "stress"
    assert cpu["type"] == "cpu"
    # psutil measured real load; how much depends on what else runs on the machine (7 %
    # was seen with a load average of 13 on 2 cores), so only its presence is asserted.
    assert cpu["observed"]["cpu_percent"] > 0
    memory = tests["memory_pressure"]["iterations"][0]["faults"][0]
    assert memory["observed"]["rss_mb"] >= 0.9 * 256


def test_latency_fault_is_observed_by_the_code_under_test(project: pytest.Pytester) -> None:
    project.makepyfile("""
        import pytest

        @pytest.mark.chaos("network_latency", iterations=2)
        def test_slow(chaos_proxy, echo, rt, chaos):
            proxy = chaos_proxy("api", echo.address)
            took = rt(proxy.host, proxy.port)
            chaos.record(round_trip_ms=took * 1000)
            if chaos.active:  # not in the reference run without faults
                assert took >= 0.14   # 200 ms +- 50 ms jitter on the way back

        def test_plain_run_has_no_latency(chaos_proxy, echo, rt, toxiproxy):
            proxy = chaos_proxy("api", echo.address)
            rt(proxy.host, proxy.port)
            assert toxiproxy.client.proxies()[proxy.server_name].toxics() == {}
    """)
    result = project.runpytest_subprocess("--rafael-chaos")
    result.assert_outcomes(passed=4)
    iterations = read_results(project)["tests"][0]["iterations"]
    for it in iterations:
        assert it["metrics"]["round_trip_ms"] >= 140
        (fault,) = it["faults"]
        assert fault["type"] == "latency"
        assert fault["target"] == "api"
        assert fault["reverted_at_s"] is not None


def test_the_same_test_passes_without_chaos(project: pytest.Pytester) -> None:
    project.makepyfile("""
        import pytest

        @pytest.mark.chaos("network_latency")
        def test_fast(chaos_proxy, echo, rt, toxiproxy):
            proxy = chaos_proxy("api", echo.address)
            rt(proxy.host, proxy.port)
            assert toxiproxy.client.proxies()[proxy.server_name].toxics() == {}
    """)
    project.runpytest_subprocess().assert_outcomes(passed=1)
    # the reference run without faults passes; both iterations under latency fail
    project.runpytest_subprocess("--rafael-chaos", "--rafael-iterations", "2").assert_outcomes(
        passed=1, failed=2
    )


def test_down_fault_refuses_connections_then_recovers(project: pytest.Pytester) -> None:
    write_scenario(
        project.path / "scen",
        "outage",
        """
name: outage
description: the db is down for 300 ms
severity: high
faults:
  - kind: down
    target: db
    start: 0s
    duration: 300ms
""",
    )
    project.makepyfile("""
        import time
        import pytest

        @pytest.mark.chaos("outage", iterations=1)
        def test_outage(chaos_proxy, echo, rt, chaos):
            db = chaos_proxy("db", echo.address)
            if chaos.active:
                with pytest.raises(OSError):
                    rt(db.host, db.port, timeout=1)
            time.sleep(0.5)
            rt(db.host, db.port)  # the outage ended: the link carries data again
    """)
    project.runpytest_subprocess("--rafael-chaos", "--rafael-scenarios", "scen").assert_outcomes(
        passed=2
    )


def test_marker_targets_remap_scenario_proxy_names(project: pytest.Pytester) -> None:
    project.makepyfile("""
        import pytest

        @pytest.mark.chaos("db_failure", iterations=1, targets={"db": "postgres"})
        def test_remapped(chaos_proxy, echo, rt, chaos):
            pg = chaos_proxy("postgres", echo.address)
            if chaos.active:
                with pytest.raises(OSError):
                    rt(pg.host, pg.port, timeout=1)
    """)
    project.runpytest_subprocess("--rafael-chaos").assert_outcomes(passed=2)


def test_scenario_aimed_at_a_missing_proxy_is_a_clear_error(project: pytest.Pytester) -> None:
    project.makepyfile("""
        import pytest

        @pytest.mark.chaos("db_failure", iterations=1)
        def test_no_db(chaos_proxy, echo):
            chaos_proxy("cache", echo.address)

        @pytest.mark.chaos("network_latency", iterations=1)
        def test_no_proxy_at_all():
            pass
    """)
    result = project.runpytest_subprocess("--rafael-chaos")
    result.assert_outcomes(passed=2, failed=2)  # the reference runs inject nothing
    result.stdout.fnmatch_lines(
        [
            "*scenario 'db_failure' targets proxy 'db' (*db_failure.yaml:*) but the test "
            "created cache*",
            "*scenario 'network_latency' injects network faults into every proxy of the test, "
            "but the test created none*",
        ]
    )


def test_upstreams_must_be_loopback_unless_allowlisted(project: pytest.Pytester) -> None:
    project.makepyfile("""
        def test_remote(chaos_proxy):
            chaos_proxy("db", "192.0.2.10:5432")
    """)
    result = project.runpytest_subprocess()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*upstream '192.0.2.10:5432' is not a loopback address*"])
    allowed = project.runpytest_subprocess("--rafael-allow-target", "192.0.2.10")
    allowed.assert_outcomes(passed=1)


def test_user_scenarios_add_and_override(project: pytest.Pytester) -> None:
    write_scenario(
        project.path / "mine",
        "network_latency",
        """
name: network_latency
description: overridden with 20 ms
severity: low
faults:
  - kind: toxic
    type: latency
    attributes: {latency: 20}
""",
    )
    project.makepyfile("""
        import pytest

        @pytest.mark.chaos("network_latency", iterations=1)
        def test_short(chaos_proxy, echo, rt, chaos):
            p = chaos_proxy("api", echo.address)
            took = rt(p.host, p.port)
            if chaos.active:
                assert took >= 0.015
                (fault,) = chaos.scenario.faults  # the user's 20 ms, not the built-in 200
                assert fault.attributes["latency"] == 20
            assert chaos.scenario.description == "overridden with 20 ms"
    """)
    project.runpytest_subprocess("--rafael-chaos", "--rafael-scenarios", "mine").assert_outcomes(
        passed=2
    )
    assert read_results(project)["tests"][0]["severity"] == "low"


def test_bad_user_scenario_yaml_is_one_line_naming_file_and_line(
    project: pytest.Pytester,
) -> None:
    write_scenario(
        project.path / "bad",
        "broken",
        """
name: broken
description: bad latency
severity: low
faults:
  - kind: toxic
    type: latency
    attributes: {latency: fast}
""",
    )
    project.makepyfile(
        """
        import pytest

        @pytest.mark.chaos("broken")
        def test_x():
            pass
        """
    )
    result = project.runpytest_subprocess("--rafael-chaos", "--rafael-scenarios", "bad")
    assert result.ret != 0
    result.stdout.fnmatch_lines(
        ["*broken.yaml:8: field ?faults[[]0[]].attributes.latency?: expected a non-negative*"]
    )
    assert "Traceback" not in result.stdout.str()


def test_gate_fails_the_session_and_names_each_test(project: pytest.Pytester) -> None:
    project.makepyfile("""
        import pytest

        @pytest.mark.chaos("network_latency", iterations=2)
        def test_too_slow(chaos_proxy, echo, rt):
            p = chaos_proxy("api", echo.address)
            assert rt(p.host, p.port) < 0.1

        @pytest.mark.chaos("network_latency", iterations=3, min_fitness=0.0)
        def test_lenient(chaos_proxy, echo, rt):
            p = chaos_proxy("api", echo.address)
            assert rt(p.host, p.port) < 0.1

        @pytest.mark.chaos("cpu_spike", iterations=2)
        def test_fine():
            pass
    """)
    result = project.runpytest_subprocess("--rafael-chaos", "--rafael-min-fitness", "0.5")
    assert result.ret == 1
    gate_lines = [line for line in result.outlines if line.startswith("GATE FAILED")]
    assert len(gate_lines) == 1
    assert "test_gate_fails_the_session_and_names_each_test.py::test_too_slow" in gate_lines[0]
    gate = read_results(project)["gate"]
    assert gate["passed"] is False
    assert gate["min_fitness"] == 0.5
    assert len(gate["failures"]) == 1
    assert "test_too_slow [network_latency]" in gate["failures"][0]


def test_gate_passes_when_every_test_clears_it(project: pytest.Pytester) -> None:
    project.makepyfile("""
        import pytest

        @pytest.mark.chaos("cpu_spike", iterations=2)
        def test_fine():
            pass
    """)
    result = project.runpytest_subprocess("--rafael-chaos", "--rafael-min-fitness", "0.5")
    assert result.ret == 0
    assert read_results(project)["gate"] == {"min_fitness": 0.5, "passed": True, "failures": []}
    summary = (project.path / "reports" / "summary.md").read_text()
    assert "test\\_fine" in summary  # Markdown-escaped


def test_stressor_fixture_applies_measured_pressure(project: pytest.Pytester) -> None:
    project.makepyfile("""
        import psutil
        import pytest

        @pytest.mark.chaos("cpu_spike", iterations=1)
        def test_manual(stressor):
            with stressor.memory(mb=128) as s:
                child = psutil.Process(s.pid)
                assert child.memory_info().rss >= 120 * 2**20
            assert not s.running
            stressor.cpu(percent=50)  # runs until the test ends
    """)
    project.runpytest_subprocess("--rafael-chaos").assert_outcomes(passed=2)
    metrics = read_results(project)["tests"][0]["iterations"][0]["metrics"]
    assert metrics["stressor0_rss_mb"] >= 120
    assert metrics["stressor1_cpu_seconds"] > 0


def test_a_tampered_audit_chain_fails_the_run_but_keeps_the_report(
    project: pytest.Pytester,
) -> None:
    import sqlite3

    project.makepyfile("""
        import pytest

        @pytest.mark.chaos("cpu_spike", iterations=1)
        def test_fine():
            pass
    """)
    assert project.runpytest_subprocess("--rafael-chaos").ret == 0
    with sqlite3.connect(project.path / ".rafael" / "rafael.db") as db:
        db.execute("UPDATE audit SET actor = 'mallory' WHERE id = 1")
    result = project.runpytest_subprocess("--rafael-chaos")
    assert result.ret == 1
    result.stdout.fnmatch_lines(
        ["GATE FAILED: pytest-rafael: the audit chain in *rafael.db is broken at entry 1*"]
    )
    assert "Traceback" not in result.stdout.str()
    assert read_results(project)["gate"]["passed"] is False


STORE_GOES_BAD = """

@pytest.hookimpl(trylast=True)
def pytest_configure(config):
    # After pytest-rafael checked the store: it goes bad before the run records its start.
    (config.rootpath / "later.db").write_bytes(b"\\x00garbage" * 512)
"""


def test_an_unusable_store_is_one_line_and_the_report_is_still_written(
    project: pytest.Pytester,
) -> None:
    project.makepyfile("""
        import pytest

        @pytest.mark.chaos("cpu_spike", iterations=1)
        def test_fine():
            pass
    """)
    # A file that is no database, given up front, is refused before the run starts.
    (project.path / "not-a-db").write_bytes(b"\x00garbage" * 512)
    refused = project.runpytest_subprocess("--rafael-chaos", "--rafael-store", "not-a-db")
    assert refused.ret == pytest.ExitCode.USAGE_ERROR
    refused.stderr.fnmatch_lines(["ERROR: pytest-rafael: --rafael-store: *not-a-db*"])
    # One that goes bad once the run has started (another process, a full disk) is
    # found when the run is recorded: one line, and the report is still written.
    project.makeconftest((project.path / "conftest.py").read_text() + STORE_GOES_BAD)
    result = project.runpytest_subprocess("--rafael-chaos", "--rafael-store", "later.db")
    assert result.ret == 1
    result.stdout.fnmatch_lines(["GATE FAILED: pytest-rafael: run not recorded in *later.db*"])
    assert "Traceback" not in result.stdout.str()
    assert read_results(project)["tests"][0]["iterations"][0]["outcome"] == "passed"


def test_chaos_apply_runs_drawn_schedules_and_stores_the_shrunk_failure(
    project: pytest.Pytester,
) -> None:
    project.makepyfile("""
        import pytest
        from hypothesis import HealthCheck, Phase, given, settings
        from pytest_rafael.scenario.strategies import fault_schedules

        @pytest.fixture
        def api(chaos_proxy, echo):
            return chaos_proxy("api", echo.address)

        @settings(max_examples=30, deadline=None, derandomize=True, database=None,
                  suppress_health_check=[HealthCheck.function_scoped_fixture],
                  # No explain phase: it replays hundreds of variations of the failure.
                  phases=[Phase.generate, Phase.shrink])
        # Every latency drawn fails (the test allows 200 ms): what shrinks is the
        # fault count, not a value (each value step would be a real run).
        @given(schedule=fault_schedules(targets=["api"], toxics=("latency",),
                                        bounds={"latency": {"latency": (250, 400)}},
                                        max_start_s=0, max_duration_s=0))
        def test_fast_enough(schedule, chaos, api, rt, toxiproxy):
            with chaos.apply(schedule):
                took = rt(api.host, api.port)
            # every fault was reverted at the end of the block
            assert toxiproxy.client.proxies()[api.server_name].toxics() == {}
            assert took < 0.2
    """)
    result = project.runpytest_subprocess()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*latency on 'api'*"])
    stored = json.loads((project.path / ".rafael" / "failures" / "index.json").read_text())
    (failure,) = stored["failures"] if isinstance(stored, dict) else stored
    assert [f["type"] for f in failure["schedule"]] == ["latency"]
    # Chaos was off: the failure has a file of its own, and no chaos report is written.
    plain = json.loads((project.path / "reports" / "hypothesis" / "failures.json").read_text())
    assert plain["failures"][0]["nodeid"].endswith("test_fast_enough")
    assert not (project.path / "reports" / "index.html").exists()
    result.stdout.fnmatch_lines(["rafael: shrunk fault schedules written to *failures.json*"])


def test_plugins_add_fault_kinds_through_the_apply_fault_hook(project: pytest.Pytester) -> None:
    write_scenario(
        project.path / "scen",
        "leap_second",
        """
name: leap_second
description: a leap second is inserted
severity: low
faults:
  - kind: leap_second
    attributes: {seconds: 30}
""",
    )
    project.makeconftest(
        project.path.joinpath("conftest.py").read_text()
        + """

SKEW = []


class Skew:
    def __init__(self, seconds):
        SKEW.append(seconds)

    def revert(self):
        SKEW.pop()
        return {"reverted": True}


def pytest_rafael_apply_fault(fault, context):
    if fault.kind == "leap_second":
        import dataclasses

        # A read-only view of the iteration, not the plugin's working state.
        assert context.nodeid.endswith("::test_skewed"), context.nodeid
        assert context.scenario.name == "leap_second"
        assert context.iteration in (0, 1) and context.iterations == 2
        try:
            context.genome = None
        except dataclasses.FrozenInstanceError:
            pass
        else:
            raise AssertionError("the iteration view is writable")
        return Skew(fault.attributes["seconds"])
    return None
"""
    )
    project.makepyfile("""
        import pytest
        import conftest

        @pytest.mark.chaos("leap_second", iterations=2)
        def test_skewed(chaos):
            assert conftest.SKEW == ([30] if chaos.active else [])
    """)
    project.runpytest_subprocess("--rafael-chaos", "--rafael-scenarios", "scen").assert_outcomes(
        passed=3
    )
    faults = read_results(project)["tests"][0]["iterations"][1]["faults"]
    assert faults[0]["kind"] == "leap_second"
    assert faults[0]["observed"] == {"reverted": True}
    assert faults[0]["reverted_at_s"] is not None


def test_a_call_that_ends_before_the_first_fault_is_an_error_not_a_pass(
    project: pytest.Pytester,
) -> None:
    write_scenario(
        project.path / "scen",
        "late",
        """
name: late
description: latency from 2 s on
severity: low
faults:
  - kind: toxic
    type: latency
    attributes: {latency: 100}
    start: 2s
""",
    )
    project.makepyfile("""
        import pytest

        @pytest.mark.chaos("late", iterations=1)
        def test_quick(chaos_proxy, echo):
            chaos_proxy("api", echo.address)
    """)
    result = project.runpytest_subprocess("--rafael-chaos", "--rafael-scenarios", "scen")
    result.assert_outcomes(passed=1, failed=1)  # the reference run has no fault to miss
    result.stdout.fnmatch_lines(["*the test call ended after *, before its first fault at 2 s*"])
    (iteration,) = read_results(project)["tests"][0]["iterations"]
    assert iteration["outcome"] == "error"
    assert iteration["fitness"] is None  # nothing was measured, so nothing is scored


def test_junitxml_carries_scenario_iteration_and_fitness(project: pytest.Pytester) -> None:
    import xml.etree.ElementTree as ET

    project.makepyfile("""
        import pytest

        @pytest.mark.chaos("cpu_spike", iterations=2, module="billing")
        def test_fine():
            pass
    """)
    project.runpytest_subprocess("--rafael-chaos", "--junitxml=junit.xml").assert_outcomes(passed=3)
    cases = ET.parse(project.path / "junit.xml").getroot().iter("testcase")
    every = [{p.get("name"): p.get("value") for p in case.iter("property")} for case in cases]
    assert every[0] == {"rafael_scenario": "cpu_spike", "rafael_reference": "true"}
    props = every[1:]
    assert [p["rafael_iteration"] for p in props] == ["0", "1"]
    assert all(p["rafael_scenario"] == "cpu_spike" for p in props)
    assert all(p["rafael_module"] == "billing" for p in props)
    assert all(0 <= float(p["rafael_fitness"]) <= 1 for p in props)
