"""pytest-xdist: ``-n 2`` keeps each (test, scenario)'s iterations on one worker, in
order, and the controller alone writes results with nothing lost or doubled."""

from __future__ import annotations

import pytest
from rafael_plugin_helpers import read_results

from pytest_rafael.plugin.xdist_support import chaos_scope


def test_chaos_scope_groups_iterations_of_one_test_and_scenario() -> None:
    assert chaos_scope("t.py::test_a[db_failure-it3]") == "t.py::test_a[db_failure-it*]"
    assert chaos_scope("t.py::test_a[x1-db_failure-it0-y]") == "t.py::test_a[x1-db_failure-it*-y]"
    assert chaos_scope("t.py::test_a[db_failure-it0]") != chaos_scope("t.py::test_a[cpu_spike-it0]")
    assert chaos_scope("t.py::test_plain") == "t.py::test_plain"
    assert chaos_scope("t.py::test_p[1]") == "t.py::test_p[1]"


def test_two_workers_keep_iterations_together(project: pytest.Pytester) -> None:
    project.makepyfile("""
        import os
        import pytest

        @pytest.mark.chaos("network_latency", "slow_close", iterations=3)
        @pytest.mark.parametrize("n", [1, 2])
        def test_many(n, chaos, chaos_proxy, echo, rt):
            p = chaos_proxy("api", echo.address)
            rt(p.host, p.port)
            chaos.record(worker=os.environ["PYTEST_XDIST_WORKER"])

        @pytest.mark.parametrize("i", range(6))
        def test_plain(i):
            pass
    """)
    result = project.runpytest_subprocess("-n", "2", "--rafael-chaos", "--rafael-seed", "3")
    result.assert_outcomes(passed=22)  # 4 pairs x (3 iterations + a reference) + 6
    results = read_results(project)
    assert results["seed"] == 3
    tests = results["tests"]
    assert len(tests) == 4  # 2 params x 2 scenarios, each once
    workers = set()
    for t in tests:
        assert [i["index"] for i in t["iterations"]] == [0, 1, 2]
        used = {i["metrics"]["worker"] for i in t["iterations"]} | {t["reference"]["worker"]}
        assert len(used) == 1, f"{t['nodeid']} [{t['scenario']}] ran on {used}"
        workers |= used
    assert workers <= {"gw0", "gw1"}
