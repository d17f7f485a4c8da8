"""One (test, scenario) evolution as the plugin drives it: the shipped genome as the
baseline, engine state loaded from and saved to the store, a measurement and fitness
per iteration, a verdict at the end. A thin convenience over :class:`Engine` and
:mod:`state`; the plugin may use those directly instead."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pytest_rafael.genome.evolution import Engine, Verdict
from pytest_rafael.genome.fitness import DEFAULT_WEIGHTS, Fitness, Measurement
from pytest_rafael.genome.genome import Genome
from pytest_rafael.genome.state import load_engine_state, save_engine_state
from pytest_rafael.results import evolution_key
from pytest_rafael.store.core import Store


class Evolution:
    def __init__(
        self,
        nodeid: str,
        scenario: str,
        module: str,
        adopted: Mapping[str, Genome],
        seed: int,
        store: Store | None = None,
        adopt_margin: float = 0.05,
        weights: Sequence[float] = DEFAULT_WEIGHTS,
        gene_pool: Sequence[Mapping[str, Any]] = (),
    ) -> None:
        self.key = evolution_key(nodeid, scenario)
        self.module = module
        self.store = store
        self.baseline = adopted.get(module) or Genome(module)
        state = load_engine_state(store, self.key) if store is not None else None
        self._loaded = state  # what a save merges against (another runner may save first)
        self.engine = Engine(
            self.key,
            self.baseline,
            seed,
            state=state,
            adopt_margin=adopt_margin,
            weights=weights,
            gene_pool=gene_pool,
        )

    def candidate(self, index: int) -> Genome:
        """The genome iteration ``index`` runs with (0: the shipped baseline)."""
        return self.engine.next_candidate(index)

    def record(
        self,
        index: int,
        genome: Genome,
        outcome: str,
        duration_s: float,
        runtime: Mapping[str, Any],
        metrics: Mapping[str, Any],
        fault_window: tuple[float, float] | None,
        extra_terms: Callable[[Measurement], Sequence[Mapping[str, tuple[float, float]]] | None]
        | None = None,
    ) -> tuple[Measurement, Fitness]:
        """Score iteration ``index``. ``extra_terms`` is called with the measurement
        and returns the ``pytest_rafael_fitness_terms`` hook results, e.g.
        ``lambda m: [t for t in hook.pytest_rafael_fitness_terms(measurement=m) if t]``."""
        m = Measurement.from_iteration(outcome, duration_s, runtime, metrics, fault_window)
        terms = extra_terms(m) if extra_terms is not None else None
        return m, self.engine.observe(index, genome, m, terms)

    def finish(self) -> Verdict:
        """The verdict; the engine state is saved so that the next run continues."""
        verdict = self.engine.verdict()
        if self.store is not None:
            save_engine_state(
                self.store, self.key, self.module, self.engine.state(), base=self._loaded
            )
        return verdict
