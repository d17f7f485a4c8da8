"""Resilience path coverage: which recovery paths a chaos run actually exercised.

A scenario that passes without ever making the module retry says nothing about the
retry: it is a lesson, not a pass. Two sources feed the coverage of one (test,
scenario) pair:

- ``@antifragile`` counters (:mod:`pytest_rafael.resilience.counters`): each path of
  :data:`PATHS` ran when its counter moved in some iteration. Only the paths of genes
  the genome carries are expected (no breaker gene, no breaker path).
- ``chaos.sometimes(condition, "label")`` and ``chaos.always(condition, "label")`` in
  the test (Antithesis-style assertions): stored in the iteration's metrics under
  ``sometimes:<label>`` / ``always:<label>``. A *sometimes* label is covered when the
  condition held at least once over the pair's iterations; an *always* label is broken
  when it failed once.

Imports nothing: results (the pair's verdict), the report and the fixture all use it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ALWAYS_PREFIX",
    "PATHS",
    "SOMETIMES_PREFIX",
    "PathCoverage",
    "ResiliencePath",
    "coverage_of",
    "expected_paths",
    "pair_coverage",
    "paths_ran",
    "record_always",
    "record_sometimes",
    "shipped_iterations",
]

SOMETIMES_PREFIX = "sometimes:"
ALWAYS_PREFIX = "always:"


@dataclass(frozen=True)
class ResiliencePath:
    name: str  # short, shown in the report
    gene: str  # the gene that owns the path
    counter: str  # the @antifragile counter that moves when the path runs
    description: str


PATHS: tuple[ResiliencePath, ...] = (
    ResiliencePath("retry", "retry", "retries", "retry attempted"),
    ResiliencePath("breaker_open", "circuit_breaker", "breaker_trips", "breaker opened"),
    ResiliencePath("half_open", "circuit_breaker", "half_open_probes", "half-open probe"),
    ResiliencePath("fallback", "fallback", "fallbacks", "fallback used"),
    ResiliencePath("timeout", "timeout", "timeouts", "timeout fired"),
    ResiliencePath("bulkhead", "bulkhead", "bulkhead_rejections", "bulkhead rejected"),
)


def expected_paths(genome: Mapping[str, Any] | None) -> tuple[str, ...]:
    """The paths a genome (as results.json stores it: ``{"genes": {...}}``) can run."""
    genes = (genome or {}).get("genes") or {}
    return tuple(p.name for p in PATHS if p.gene in genes)


def paths_ran(runtime: Mapping[str, Any]) -> tuple[str, ...]:
    """The paths whose counter moved in one iteration's ``runtime`` counters."""
    return tuple(p.name for p in PATHS if (runtime.get(p.counter) or 0) > 0)


def record_sometimes(metrics: dict[str, Any], label: str, condition: object) -> bool:
    """Note that ``condition`` held (or not) once; the label stays true once it held."""
    held = bool(condition)
    key = SOMETIMES_PREFIX + _label(label)
    metrics[key] = bool(metrics.get(key)) or held
    return held


def record_always(metrics: dict[str, Any], label: str, condition: object) -> bool:
    """Note one check of ``condition``; the label turns false for good when it fails."""
    held = bool(condition)
    key = ALWAYS_PREFIX + _label(label)
    metrics[key] = metrics.get(key, True) is not False and held
    return held


def _label(label: str) -> str:
    if not isinstance(label, str) or not label.strip():
        raise ValueError(
            f"chaos.sometimes/always: the label must be a non-empty string, got {label!r}"
        )
    return label.strip()


@dataclass(frozen=True)
class PathCoverage:
    """The coverage of one (test, scenario) pair over the shipped genome's iterations."""

    expected: tuple[str, ...]  # paths the genomes that ran could take
    ran: tuple[str, ...]
    sometimes_hit: tuple[str, ...]
    sometimes_missed: tuple[str, ...]  # conditions that never held
    always_broken: tuple[str, ...]  # conditions that failed at least once
    iterations: int = 0  # the measurements it rests on

    @property
    def never_ran(self) -> tuple[str, ...]:
        return tuple(p for p in self.expected if p not in self.ran)

    @property
    def exercised(self) -> bool:
        """Whether a pass says something about resilience: when ``@antifragile`` paths
        were expected at least one of them ran, and no ``chaos.always`` label broke."""
        some_ran = not self.expected or any(p in self.ran for p in self.expected)
        return some_ran and not self.always_broken

    @property
    def shortfall(self) -> str | None:
        """Why a pass is not one, in a few words (``None`` when :attr:`exercised`): a
        broken ``chaos.always`` first, as it is the stronger reason."""
        if self.always_broken:
            return f"chaos.always {', '.join(repr(x) for x in self.always_broken)} broke"
        if not self.exercised:
            return "no resilience path ran"
        return None

    @property
    def gaps(self) -> tuple[str, ...]:
        """Everything the report flags, one group a kind: ``never ran: retry, timeout``,
        ``never held: 'x'`` (sometimes-labels), ``broke: 'y'`` (always-labels)."""
        groups = (
            ("never ran", self.never_ran, str),
            ("never held", self.sometimes_missed, repr),
            ("broke", self.always_broken, repr),
        )
        return tuple(
            f"{title}: {', '.join(show(x) for x in items)}"
            for title, items, show in groups
            if items
        )

    def to_dict(self) -> dict[str, Any]:
        """The ``coverage`` object of a pair in results.json."""
        return {
            "iterations": self.iterations,
            "paths_expected": list(self.expected),
            "paths_ran": list(self.ran),
            "paths_never_ran": list(self.never_ran),
            "sometimes_held": list(self.sometimes_hit),
            "sometimes_never_held": list(self.sometimes_missed),
            "always_broken": list(self.always_broken),
            "exercised": self.exercised,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PathCoverage:
        def names(key: str) -> tuple[str, ...]:
            return tuple(str(x) for x in d.get(key) or ())

        return cls(
            expected=names("paths_expected"),
            ran=names("paths_ran"),
            sometimes_hit=names("sometimes_held"),
            sometimes_missed=names("sometimes_never_held"),
            always_broken=names("always_broken"),
            iterations=int(d.get("iterations") or 0),
        )


def coverage_of(iterations: Iterable[Mapping[str, Any]]) -> PathCoverage:
    """Coverage from results.json iterations (``genome``, ``runtime``, ``metrics``).
    Iterations that did not run (skipped) count for nothing. Paths are expected only
    from iterations with ``@antifragile`` counters: the genome of the module the marker
    names (``genome``), or of each module the test called without naming it
    (``runtime["genomes"]``)."""
    expected: dict[str, None] = {}
    ran: dict[str, None] = {}
    sometimes: dict[str, bool] = {}
    always: dict[str, bool] = {}
    count = 0
    for it in iterations:
        if it.get("outcome") == "skipped":
            continue
        count += 1
        runtime = it.get("runtime") or {}
        if "calls" in runtime:  # measured: without counters nothing is known either way
            genomes = runtime.get("genomes") or {}
            for genome in (it.get("genome"), *genomes.values()):
                expected.update(dict.fromkeys(expected_paths(genome)))
            ran.update(dict.fromkeys(paths_ran(runtime)))
        for key, value in (it.get("metrics") or {}).items():
            if key.startswith(SOMETIMES_PREFIX):
                label = key[len(SOMETIMES_PREFIX) :]
                sometimes[label] = sometimes.get(label, False) or value is True
            elif key.startswith(ALWAYS_PREFIX):
                label = key[len(ALWAYS_PREFIX) :]
                always[label] = always.get(label, True) and value is True
    order = [p.name for p in PATHS]
    return PathCoverage(
        expected=tuple(p for p in order if p in expected),
        ran=tuple(p for p in order if p in ran),
        sometimes_hit=tuple(k for k, v in sometimes.items() if v),
        sometimes_missed=tuple(k for k, v in sometimes.items() if not v),
        always_broken=tuple(k for k, v in always.items() if not v),
        iterations=count,
    )


def shipped_iterations(test: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """A results.json pair's scored iterations of the shipped genome: those its matrix
    cell's fitness rests on (a candidate's evidence is not the shipped genome's)."""
    # Results written before fitness was kept per iteration have no "fitness" key at all.
    scored = [
        i for i in test.get("iterations") or () if "fitness" not in i or i["fitness"] is not None
    ]
    base = test.get("baseline_genome")
    if test.get("module") is None or base is None:
        return scored
    return [i for i in scored if i.get("genome") == base]


def pair_coverage(test: Mapping[str, Any]) -> PathCoverage:
    """A results.json pair's coverage: its ``coverage`` object, or, for results written
    before it existed, the same computation over its shipped iterations."""
    recorded = test.get("coverage")
    if isinstance(recorded, Mapping):
        return PathCoverage.from_dict(recorded)
    return coverage_of(shipped_iterations(test))
