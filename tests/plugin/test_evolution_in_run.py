"""Evolution through the plugin: iteration 0 measures the shipped genome, later ones the
engine's candidates (visible to @antifragile and the ``genome`` fixture); a candidate that
proves better is proposed to the guardian, the hooks fire, and state carries over."""

from __future__ import annotations

import json

import pytest
from rafael_plugin_helpers import read_results

FLAKY_DEPENDENCY = """
import itertools
import pytest
from pytest_rafael import antifragile

CALLS = itertools.count()


@antifragile("orders", idempotent=True)  # a read: safe to send again after a reset
def fetch_order():
    # Every other attempt fails, like a dependency that resets half its connections:
    # a call with no retry fails half the time, one with a retry gene always succeeds.
    if next(CALLS) % 2 == 0:
        raise ConnectionResetError("reset by peer")
    return {"id": 7}


@pytest.mark.chaos("cpu_spike", iterations=6, module="orders")
def test_orders(genome, chaos):
    chaos.record(genes=",".join(sorted(genome.genes)))
    for _ in range(4):
        assert fetch_order() == {"id": 7}
"""

HOOKS = """
import json
from pathlib import Path


def pytest_rafael_proposal(event):
    with Path("proposals.jsonl").open("a") as f:
        f.write(json.dumps(event, default=str) + "\\n")


def pytest_rafael_iteration_finished(result):
    with Path("iterations.txt").open("a") as f:
        f.write(f"{result.index} {result.outcome}\\n")


def pytest_rafael_run_finished(run):
    with Path("run.txt").open("a") as f:  # appended: a second call would show
        f.write(run.run_id + "\\n")


def pytest_rafael_fitness_terms(measurement):
    # A user term: the call must finish within 50 ms of work; it never does here.
    with Path("terms.txt").open("a") as f:
        f.write(f"{measurement.outcome}\\n")
    return {"latency_budget": (1.0, 0.0)}
"""


def test_a_proven_candidate_is_proposed_and_the_hooks_fire(project: pytest.Pytester) -> None:
    project.makepyfile(test_orders=FLAKY_DEPENDENCY)
    project.makeconftest(project.path.joinpath("conftest.py").read_text() + HOOKS)
    (project.path / "rafael.genome.yaml").write_text("orders:\n  generation: 0\n  genes: {}\n")
    result = project.runpytest_subprocess(
        "--rafael-chaos", "--rafael-seed", "5", "--rafael-min-fitness", "0.9"
    )
    results = read_results(project)
    (test,) = results["tests"]
    iterations = test["iterations"]
    assert iterations[0]["genome"]["genes"] == {}  # iteration 0: the shipped genome
    assert iterations[0]["outcome"] == "failed"
    assert iterations[0]["metrics"]["genes"] == ""  # what the genome fixture saw
    with_retry = [i for i in iterations if "retry" in i["genome"]["genes"]]
    assert with_retry, "the engine never tried a retry gene"
    assert all(i["outcome"] == "passed" for i in with_retry)
    assert all("retry" in i["metrics"]["genes"] for i in with_retry)
    assert test["proposal_id"] is not None
    assert test["best_fitness"] > test["baseline_fitness"]
    assert "retry" in test["best_genome"]["genes"]
    # the gate judges what ships (the baseline) and says which candidate would pass
    assert result.ret == 1
    assert f"proposed as {test['proposal_id']}" in results["gate"]["failures"][0]
    events = [
        json.loads(line) for line in (project.path / "proposals.jsonl").read_text().splitlines()
    ]
    assert events[0]["event_type"] == "proposal_created"
    assert events[0]["change_id"] == test["proposal_id"]
    assert len((project.path / "iterations.txt").read_text().splitlines()) == 6
    assert (project.path / "run.txt").read_text().splitlines() == [results["run_id"]]
    # pytest_rafael_fitness_terms: called for every scored iteration, its term is in the
    # fitness with its weight, renormalised with the built-in terms.
    assert len((project.path / "terms.txt").read_text().splitlines()) == 6
    for i in iterations:
        assert i["fitness_terms"]["latency_budget"] == 0.0
        assert i["fitness"] < 1.0


def test_evolution_state_carries_over_between_runs(project: pytest.Pytester) -> None:
    project.makepyfile(test_orders=FLAKY_DEPENDENCY)
    (project.path / "rafael.genome.yaml").write_text("orders:\n  generation: 0\n  genes: {}\n")
    project.runpytest_subprocess("--rafael-chaos", "--rafael-seed", "5")
    first = read_results(project)["tests"][0]["iterations"]
    project.runpytest_subprocess("--rafael-chaos", "--rafael-seed", "5")
    second = read_results(project)["tests"][0]["iterations"]
    generations = [i["genome"]["generation"] for i in first[1:]]
    later = [i["genome"]["generation"] for i in second[1:]]
    assert max(later) > max(generations)  # the second run builds on the first
