"""The plugin-facing Evolution driver: real runtime, real store, two CI runs."""

from __future__ import annotations

from pathlib import Path

from pytest_rafael.genome.genome import Genome
from pytest_rafael.genome.session import Evolution
from pytest_rafael.resilience import antifragile, runtime
from pytest_rafael.store.core import Store


def test_two_runs_continue_through_the_store(tmp_path: Path) -> None:
    tries = {"n": 0}

    @antifragile("inventory")
    def reserve() -> str:
        tries["n"] += 1
        if tries["n"] % 3:  # two failures, then a success
            raise ConnectionError("reset")
        return "ok"

    # Reservations here are idempotent reads: a retry may re-send one after a reset.
    adopted = {
        "inventory": Genome.from_dict(
            "inventory", {"generation": 1, "genes": {}, "idempotent": True}
        )
    }
    generations: list[int] = []
    verdicts = []
    for run in range(3):
        with Store(tmp_path / "rafael.db") as store:
            evo = Evolution(
                "tests/test_inv.py::test_reserve",
                "flaky_network",
                "inventory",
                adopted,
                seed=run,
                store=store,
            )
            assert evo.engine.runs == run + 1
            for i in range(5):
                genome = evo.candidate(i)
                tries["n"] = 0
                with runtime.use_genome(genome, "inventory"), runtime.measuring("inventory") as rt:
                    try:
                        reserve()
                        outcome = "passed"
                    except ConnectionError:
                        outcome = "failed"
                _, fitness = evo.record(
                    i,
                    genome,
                    outcome,
                    0.01,
                    rt,
                    {},
                    None,
                    extra_terms=lambda m: [{"calls_made": (0.5, min(1.0, m.calls / 1))}],
                )
                assert 0.0 <= fitness.score <= 1.0
                assert fitness.terms["calls_made"] == 1.0
                generations.append(genome.generation)
            verdicts.append(evo.finish())
    assert generations[0] == 1  # iteration 0 is the shipped genome
    assert max(generations[10:]) > max(generations[:5])  # generations grow across runs
    last = verdicts[-1]
    assert last.propose
    assert last.best_genome is not None
    assert last.best_genome.genes["retry"]["max_attempts"] >= 3
