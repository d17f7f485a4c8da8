"""What a chaos run measured, as frozen value objects and the ``results.json`` schema.

Workers build :class:`IterationResult` objects; the controller alone assembles them into
:class:`RunResult` (one writer for store and reports, also under pytest-xdist).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from pytest_rafael.common.path_coverage import PathCoverage, coverage_of

SCHEMA = "rafael.results/1"

Outcome = str  # "passed" | "failed" | "error" | "skipped"


def success_rate(outcomes: Iterable[str]) -> float:
    """Share of the iterations that ran (skipped ones say nothing) and passed; 0.0 when
    none ran: no evidence of resilience is never shown as success. The report reads the
    same rule (:func:`pytest_rafael.report.model.success_rate`)."""
    ran = [o for o in outcomes if o != "skipped"]
    return sum(o == "passed" for o in ran) / len(ran) if ran else 0.0


def reference_failure(reference: object) -> str | None:
    """The error (else the outcome) of a no-fault reference run that failed or errored;
    None when it passed, was skipped or did not run. ``reference`` is a pair's
    ``reference`` object, typed or read back from results.json."""
    if isinstance(reference, Mapping) and reference.get("outcome") in ("failed", "error"):
        return str(reference.get("error") or reference.get("outcome"))
    return None


def evolution_key(nodeid: str, scenario: str, module: str | None = None) -> str:
    """The store's key for one evolution. A test that evolves several modules together
    (``module=("a", "b")``) keeps one evolution per module, so ``module`` is named then."""
    return f"{nodeid}::{scenario}" if module is None else f"{nodeid}::{scenario}::{module}"


@dataclass(frozen=True)
class FaultRecord:
    """One fault as it was really applied during an iteration."""

    kind: str  # toxic | down | stress
    target: str  # proxy name, or the stressor resource (cpu / memory / disk)
    type: str  # toxic type, "down", or stressor kind
    attributes: dict[str, Any] = field(default_factory=dict)
    stream: str | None = None
    toxicity: float | None = None
    applied_at_s: float | None = None  # offset into the test call
    reverted_at_s: float | None = None
    observed: dict[str, Any] = field(default_factory=dict)  # achieved CPU %, RSS, bytes ...

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class IterationResult:
    """One run of one (test, scenario) pair under one genome."""

    nodeid: str  # the test without the rafael parameter: the (test, scenario) key
    scenario: str
    index: int
    outcome: Outcome
    duration_s: float
    module: str | None = None
    severity: str | None = None
    genome: dict[str, Any] | None = None
    fitness: float | None = None
    fitness_terms: dict[str, float] = field(default_factory=dict)
    faults: tuple[FaultRecord, ...] = ()
    metrics: dict[str, Any] = field(default_factory=dict)  # chaos.record(**metrics)
    runtime: dict[str, Any] = field(default_factory=dict)  # @antifragile counters
    error: str | None = None  # one line: exception type and message
    worker: str | None = None
    min_fitness: float | None = None  # the gate for this test (marker > CLI > env > ini)
    # A test that evolves several modules together: every module's genome in force. Then
    # ``module`` is the one module running a candidate, or None when all run what ships.
    genomes: dict[str, dict[str, Any]] | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["faults"] = [f.to_dict() for f in self.faults]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> IterationResult:
        d = dict(d)
        d["faults"] = tuple(FaultRecord(**f) for f in d.get("faults", ()))
        return cls(**d)


@dataclass(frozen=True)
class PairVerdict:
    """The evolution engine's verdict on one (test, scenario) pair at the end of its
    iterations, sent by the process that ran them to the controller (as :meth:`to_dict`
    on the test report, which pytest-xdist carries between processes)."""

    key: str  # "<nodeid>::<scenario>"
    nodeid: str
    scenario: str
    module: str
    baseline_fitness: float | None
    best_fitness: float | None
    best_genome: dict[str, Any] | None
    baseline_genome: dict[str, Any]
    propose: bool
    reason: str
    idempotent: bool | None
    engine_state: dict[str, Any]
    # The state the engine started from: saving merges against it when another runner
    # saved the same pair meanwhile (see genome.state).
    engine_base: dict[str, Any] | None = None

    def entry_stats(self, genome_id: str | None) -> tuple[int, float | None]:
        """``(n, mean fitness)`` the engine holds for exactly ``genome_id``."""
        if genome_id is None:
            return 0, None
        entry = (self.engine_state or {}).get("entries", {}).get(genome_id)
        if not entry or not entry.get("n"):
            return 0, None
        return int(entry["n"]), float(entry["sum"]) / int(entry["n"])

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PairVerdict:
        return cls(**d)


@dataclass(frozen=True)
class TestResult:
    """All iterations of one (test, scenario) pair, with the evolution verdict."""

    __test__ = False  # not a pytest test class

    nodeid: str
    scenario: str
    severity: str
    module: str | None
    iterations: tuple[IterationResult, ...]
    baseline_fitness: float | None = None
    best_fitness: float | None = None
    best_genome: dict[str, Any] | None = None
    baseline_genome: dict[str, Any] | None = None
    adopted: bool = False
    proposal_id: str | None = None
    min_fitness: float | None = None  # the gate that applies to this test
    baseline_n: int = 0  # measurements of the shipped genome in this run
    samples_needed: int = 1  # 3 for a scenario that hits by chance
    best_n: int = 0  # measurements behind best_fitness (all runs, exactly that genome)
    reference: dict[str, Any] | None = None  # the no-fault run: outcome, duration_s
    idempotent: bool | None = None  # the module's declaration (None: not declared)
    together: tuple[str, ...] = ()  # all modules this test evolves, when it names several

    @property
    def label(self) -> str:
        """``nodeid [scenario]``, with the module when the test evolves several."""
        where = f"{self.nodeid} [{self.scenario}]"
        return f"{where} ({self.module})" if self.together else where

    @property
    def evolution_key(self) -> str:
        """The key of this pair's evolution (and verdict) for its module."""
        return evolution_key(self.nodeid, self.scenario, self.module if self.together else None)

    @property
    def success_rate(self) -> float:
        return success_rate(i.outcome for i in self.iterations)

    @property
    def shipped_iterations(self) -> tuple[IterationResult, ...]:
        """The scored iterations that ran the shipped genome."""
        if self.module is None:
            return tuple(i for i in self.iterations if i.fitness is not None)
        return tuple(
            i for i in self.iterations if i.fitness is not None and i.genome == self.baseline_genome
        )

    @property
    def shipped_passed(self) -> int:
        """How many measurements of the shipped genome passed."""
        return sum(i.outcome == "passed" for i in self.shipped_iterations)

    @property
    def shipped_success_rate(self) -> float | None:
        """The share of the shipped genome's measurements that passed: the headline success
        rate (candidates' iterations do not count). None when it was never measured."""
        shipped = self.shipped_iterations
        return self.shipped_passed / len(shipped) if shipped else None

    @property
    def failed_shipped(self) -> bool:
        """The shipped genome failed in at least one of its measurements."""
        return any(i.outcome != "passed" for i in self.shipped_iterations)

    @property
    def fails_without_faults(self) -> bool:
        """Its reference run, with no fault at all, failed: a failure under a fault is
        then no evidence that the fault broke anything. The test needs fixing first."""
        return reference_failure(self.reference) is not None

    @property
    def vulnerable(self) -> bool:
        """The shipped genome failed a measurement that its fault caused: a vulnerability
        (not when the test fails without faults too)."""
        return self.failed_shipped and not self.fails_without_faults

    @property
    def passed_shipped(self) -> bool:
        """The shipped genome passed every measurement, and there were enough of them."""
        shipped = self.shipped_iterations
        return len(shipped) >= max(1, self.samples_needed) and not self.failed_shipped

    @functools.cached_property  # read by withstood, not_exercised and to_dict alike
    def coverage(self) -> PathCoverage:
        """The resilience paths and ``chaos.sometimes``/``always`` labels of the shipped
        genome's measurements: a candidate's evidence is never credited to it."""
        return coverage_of(
            {"outcome": i.outcome, "genome": i.genome, "runtime": i.runtime, "metrics": i.metrics}
            for i in self.shipped_iterations
        )

    @property
    def withstood(self) -> bool:
        """Passed (:attr:`passed_shipped`) and exercised: a pass during which none of the
        expected ``@antifragile`` paths ran, or a ``chaos.always`` label broke, says
        nothing about resilience (:attr:`not_exercised`)."""
        return self.passed_shipped and self.coverage.exercised

    @property
    def not_exercised(self) -> bool:
        """Passed, not exercised: counted apart, never as a mitigated threat."""
        return self.passed_shipped and not self.coverage.exercised

    def to_dict(self) -> dict[str, Any]:
        return {
            "nodeid": self.nodeid,
            "scenario": self.scenario,
            "severity": self.severity,
            "module": self.module,
            "iterations": [
                {
                    "index": i.index,
                    "genome": i.genome,
                    "outcome": i.outcome,
                    "duration_s": i.duration_s,
                    "fitness": i.fitness,
                    "fitness_terms": i.fitness_terms,
                    "faults": [f.to_dict() for f in i.faults],
                    "metrics": i.metrics,
                    "runtime": i.runtime,
                    "error": i.error,
                    "worker": i.worker,
                    **({"genomes": i.genomes} if i.genomes else {}),
                }
                for i in self.iterations
            ],
            "success_rate": self.success_rate,
            "shipped_success_rate": self.shipped_success_rate,
            "shipped_passed": self.shipped_passed,
            "baseline_fitness": self.baseline_fitness,
            "best_fitness": self.best_fitness,
            "best_genome": self.best_genome,
            "baseline_genome": self.baseline_genome,
            "adopted": self.adopted,
            "proposal_id": self.proposal_id,
            "min_fitness": self.min_fitness,
            "baseline_n": self.baseline_n,
            "samples_needed": self.samples_needed,
            "best_n": self.best_n,
            "withstood": self.withstood,
            "not_exercised": self.not_exercised,
            "fails_without_faults": self.fails_without_faults,
            "coverage": self.coverage.to_dict(),
            "reference": self.reference,
            "idempotent": self.idempotent,
            **({"together": list(self.together)} if self.together else {}),
        }


def improvement_pct(before: float, after: float) -> float:
    """The change from ``before`` to ``after`` in percent. A percentage of 0 is
    undefined; results.json has always held 100.0 for any gain from 0 (and 0.0 for
    none), and the terminal, page and summary show the absolute difference instead."""
    if before > 0:
        return round((after - before) / before * 100, 2)
    return 100.0 if after > 0 else 0.0


def mitigated(withstood: bool, score: float | None, min_fitness: float | None) -> bool:
    """Withstood with the shipped genome, and not below the test's own gate: a threat
    the verdict fails on is never listed as mitigated beside it (one run and a merged
    run group alike)."""
    return withstood and (min_fitness is None or (score or 0.0) >= min_fitness)


@dataclass(frozen=True)
class Delta:
    """What ships: ``baseline_score`` is the shipped genomes' mean fitness in this run,
    ``current_score`` that of the genomes shipping after it (different only where the
    guardian adopted a proposal during the run). ``potential_score`` is what the best
    measured candidates would score: a promise, not what ships."""

    baseline_score: float
    current_score: float
    improvement_pct: float
    threats_mitigated: tuple[str, ...]
    vulnerabilities: tuple[str, ...]
    potential_score: float | None = None
    potential_improvement_pct: float | None = None
    # "nodeid [scenario]" of each pair that passed without exercising its resilience
    # paths: not a mitigated threat, counted apart.
    not_exercised: tuple[str, ...] = ()
    # "nodeid [scenario]: error" of each pair whose test failed without faults too: not
    # a vulnerability (no fault is to blame), and not a mitigated threat either.
    fails_without_faults: tuple[str, ...] = ()


@dataclass(frozen=True)
class Gate:
    min_fitness: float | None
    passed: bool
    failures: tuple[str, ...]  # one line each: "nodeid [scenario]: fitness 0.41 < 0.70"


@dataclass(frozen=True)
class RunResult:
    run_id: str
    started_at: str  # ISO 8601, UTC
    finished_at: str
    duration_s: float
    seed: int
    chaos: bool
    toxiproxy_url: str | None
    actor: str
    tests: tuple[TestResult, ...]
    delta: Delta
    gate: Gate
    extra: dict[str, Any] = field(default_factory=dict)  # guardian, vault, ... sections

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "run_id": self.run_id,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "duration_s": self.duration_s,
            "seed": self.seed,
            "chaos": self.chaos,
            "toxiproxy_url": self.toxiproxy_url,
            "actor": self.actor,
            "tests": [t.to_dict() for t in self.tests],
            "delta": asdict(self.delta),
            "gate": asdict(self.gate),
            **self.extra,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False, default=str)
