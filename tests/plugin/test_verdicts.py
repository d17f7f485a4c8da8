"""Verdicts people act on, end to end through the plugin with real proxies: a failure never
scores as a success, slowdowns count, the delta and headline describe what ships, and
evidence belongs to the proposal it supports."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from rafael_plugin_helpers import read_results, write_scenario

# A refused dependency for 0.3 s from the start of the call: a retry on a refused connect
# (which proves nothing was sent) gets through, a bare call does not.
BLIP = """
name: blip
description: the dependency refuses connections for 0.3 s
severity: medium
faults:
  - kind: down
    target: api
    start: 0s
    duration: 300ms
"""

SLOW = """
name: slow
description: every reply is 150 ms late
severity: low
faults:
  - kind: toxic
    target: api
    type: latency
    attributes: {latency: 150}
"""


def _prom(project: pytest.Pytester) -> str:
    return (project.path / "reports" / "metrics.prom").read_text()


def test_recorded_metrics_never_lift_a_failed_iteration(project: pytest.Pytester) -> None:
    write_scenario(project.path / "scen", "slow", SLOW)
    project.makepyfile("""
        import pytest

        @pytest.mark.chaos("slow", iterations=3)
        def test_lies(chaos_proxy, echo, chaos, rt):
            api = chaos_proxy("api", echo.address)
            rt(api.host, api.port)
            chaos.record(ok=10, total=10, success_rate=1.0, recovery_s=0.0)
            assert not chaos.active, "broken under the fault"  # the reference run passes
    """)
    result = project.runpytest_subprocess(
        "--rafael-chaos", "--rafael-scenarios=scen", "--rafael-min-fitness=0.5"
    )
    assert result.ret == 1
    (test,) = read_results(project)["tests"]
    assert [i["fitness"] for i in test["iterations"]] == [0.0, 0.0, 0.0]
    assert test["baseline_fitness"] == 0.0
    gate = read_results(project)["gate"]
    assert not gate["passed"]
    assert gate["failures"][0].startswith("test_recorded_metrics_never_lift")
    result.stdout.fnmatch_lines(["*fitness 0.00 (n=3)*FAIL (gate 0.5)*"])
    prom = _prom(project)
    assert re.search(r'^rafael_fitness\{module="",scenario="slow"\} 0\.0$', prom, re.M)
    assert "rafael_gate_passed 0.0" in prom
    summary = (project.path / "reports" / "summary.md").read_text()
    assert summary.startswith("## ❌ pytest-rafael: resilience gate failed")
    assert "0 %" in summary
    delta = read_results(project)["delta"]
    assert delta["threats_mitigated"] == []
    assert len(delta["vulnerabilities"]) == 1


def test_a_test_that_only_gets_slower_scores_lower(project: pytest.Pytester) -> None:
    write_scenario(project.path / "scen", "slow", SLOW)
    project.makepyfile("""
        import pytest

        @pytest.mark.chaos("slow", iterations=2)
        def test_slowed(chaos_proxy, echo, rt):
            api = chaos_proxy("api", echo.address)
            for _ in range(6):
                rt(api.host, api.port)

        @pytest.mark.chaos("slow", iterations=2)
        def test_untouched(chaos_proxy, echo, rt):
            chaos_proxy("api", echo.address)  # the fault is applied, nothing goes through it
            for _ in range(6):
                rt(*echo.address.split(":")[0:1], int(echo.address.split(":")[1]))
    """)
    result = project.runpytest_subprocess("--rafael-chaos", "--rafael-scenarios=scen", "-v")
    assert result.ret == 0, result.stdout.str()
    tests = {t["nodeid"].rsplit("::", 1)[1]: t for t in read_results(project)["tests"]}
    slowed, untouched = tests["test_slowed"], tests["test_untouched"]
    # both pairs ran once without faults first: the reference of the speed term
    assert slowed["reference"]["outcome"] == "passed"
    assert all(
        i["duration_s"] > 5 * slowed["reference"]["duration_s"] for i in slowed["iterations"]
    )
    assert all(i["fitness_terms"]["speed"] < 0.3 for i in slowed["iterations"])
    assert slowed["baseline_fitness"] < untouched["baseline_fitness"] - 0.1
    result.stdout.fnmatch_lines(["*test_slowed[[]slow-nofault[]] PASSED*"])


def test_no_gate_set_reads_no_gate_set_even_when_everything_failed(
    project: pytest.Pytester,
) -> None:
    write_scenario(project.path / "scen", "slow", SLOW)
    project.makepyfile("""
        import pytest

        @pytest.mark.chaos("slow", iterations=2)
        def test_broken(chaos_proxy, echo):
            chaos_proxy("api", echo.address)
            raise ConnectionError("down")
    """)
    project.runpytest_subprocess("--rafael-chaos", "--rafael-scenarios=scen")
    page = (project.path / "reports" / "index.html").read_text()
    assert "<h1>No gate set</h1>" in page
    assert "Resilience gate passed" not in page
    assert "PASSED" not in page
    assert 'class="verdict none"' in page
    assert (
        (project.path / "reports" / "summary.md")
        .read_text()
        .startswith("## pytest-rafael: no gate set")
    )
    assert "rafael_gate_set 0.0" in _prom(project)


ORDERS = """
import pytest
import socket
from pytest_rafael import antifragile


@antifragile("orders")
def ping(host, port):
    with socket.create_connection((host, port), timeout=2) as s:
        s.sendall(b"x")
        assert s.recv(1) == b"x"


@pytest.mark.chaos("blip", module="orders")
def test_FIRST(chaos_proxy, echo, chaos):
    api = chaos_proxy("api", echo.address)
    for _ in range(4):
        ping(api.host, api.port)


@pytest.mark.chaos("blip", module="orders")
def test_SECOND(chaos_proxy, echo, chaos):
    api = chaos_proxy("api", echo.address)
    for _ in range(4):
        ping(api.host, api.port)
"""


def _proposals(project: pytest.Pytester) -> list[dict]:
    from pytest_rafael.guardian.proposals import ProposalRepo
    from pytest_rafael.store.core import Store

    with Store(project.path / ".rafael" / "rafael.db") as store:
        repo = ProposalRepo(store.conn)
        return [repo.get(p["id"]).to_dict() for p in read_results(project)["guardian"]["proposals"]]


def _run_orders(
    project: pytest.Pytester, first: str, second: str, first_scenario: str = "blip"
) -> dict:
    write_scenario(project.path / "scen", "blip", BLIP)
    source = ORDERS.replace("FIRST", first).replace("SECOND", second)
    source = source.replace('chaos("blip"', f'chaos("{first_scenario}"', 1)
    project.makepyfile(test_orders=source)
    (project.path / "rafael.genome.yaml").write_text("orders:\n  generation: 0\n  genes: {}\n")
    # Every proposal waits for people: nothing is adopted during the run.
    project.makefile(
        ".toml",
        pyproject=(
            "[tool.rafael.guardian]\napprovals = {low = 1, medium = 1, high = 2, critical = 2}\n"
        ),
    )
    result = project.runpytest_subprocess(
        "--rafael-chaos",
        "--rafael-scenarios=scen",
        "--rafael-seed=3",
        "--rafael-iterations=6",
        "--rafael-min-fitness=0.9",
    )
    assert result.ret == 1, result.stdout.str()
    return read_results(project)


def test_evidence_is_the_proposed_genomes_own_on_every_test_of_its_module(
    project: pytest.Pytester,
) -> None:
    results = _run_orders(project, "a_evolves", "b_follows")
    tests = results["tests"]
    assert all(t["proposal_id"] for t in tests), tests
    (proposal,) = _proposals(project)
    evidence = proposal["evidence"]
    from pytest_rafael.genome.genome import Genome

    candidate_id = Genome.from_dict("orders", proposal["candidate"]).id
    assert evidence["genome"] == candidate_id
    assert evidence["unmeasured"] == []
    for row in evidence["tests"]:
        assert row["measured"]
        assert row["candidate_n"] >= 1
        # each figure is the mean of exactly the candidate's iterations on that test
        test = next(t for t in tests if t["nodeid"] == row["nodeid"])
        own = [
            i["fitness"]
            for i in test["iterations"]
            if i["genome"] and Genome.from_dict("orders", i["genome"]).id == candidate_id
        ]
        assert len(own) == row["candidate_n"]
        assert row["candidate_fitness"] == pytest.approx(sum(own) / len(own), abs=1e-4)
    # the delta describes what ships: nothing was adopted, so current is the baseline
    delta = results["delta"]
    assert delta["current_score"] == delta["baseline_score"]
    assert delta["potential_score"] > delta["baseline_score"]
    assert len(delta["vulnerabilities"]) == 2
    assert delta["threats_mitigated"] == []


def test_a_test_the_candidate_never_ran_on_is_named_and_makes_the_impact_high(
    project: pytest.Pytester,
) -> None:
    # The first test of the module runs under a fault that costs it nothing but time, and
    # before any candidate of the second exists: that candidate is never measured on it.
    write_scenario(project.path / "scen", "slow", SLOW)
    results = _run_orders(project, "a_first", "b_evolves", first_scenario="slow")
    (proposal,) = _proposals(project)
    first = results["tests"][0]
    assert first["scenario"] == "slow"
    assert proposal["evidence"]["unmeasured"] == [f"{first['nodeid']} [slow]"]
    row = next(r for r in proposal["evidence"]["tests"] if r["nodeid"] == first["nodeid"])
    assert row["measured"] is False
    assert row["candidate_fitness"] is None
    assert proposal["impact"] == "high"
    assert any("never measured on" in r for r in proposal["reasons"])
    report = (project.path / "reports" / "index.html").read_text()
    assert "was never measured on" in report


def test_a_collection_error_gives_one_verdict_and_no_score(project: pytest.Pytester) -> None:
    project.makepyfile("""
        import pytest

        @pytest.mark.chaos("flaky_netwrk")
        def test_typo():
            pass
    """)
    result = project.runpytest_subprocess("--rafael-chaos")
    out = result.stdout.str().split("RAFAEL", 1)[1]
    assert "GATE FAILED: run interrupted (collection errors)" in out
    assert "no gate set" not in out  # the interruption is the verdict
    assert "baseline" not in out  # nothing was measured: no 0.00 -> 0.00
    summary = (project.path / "reports" / "summary.md").read_text()
    assert "shipped: baseline" not in summary
    assert "Not measured" in summary
    # The audit count the report gives is the one `rafael audit verify` gives next: the
    # run's own run_finished entry included.
    audit = read_results(project)["guardian"]["audit"]
    verify = subprocess.run(
        [sys.executable, "-m", "pytest_rafael.cli", "audit", "verify"],
        cwd=project.path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert f"{audit['entries']} entries verified" in verify.stdout
    assert audit["entries"] == audit["head"]["id"] == 2  # run_started, run_finished
    assert f"audit chain verified ({audit['entries']} entries)" in summary
