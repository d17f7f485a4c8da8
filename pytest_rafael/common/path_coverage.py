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

Imports nothing heavy: the report and the fixture both use it.
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
    "paths_ran",
    "record_always",
    "record_sometimes",
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
    """The coverage of one (test, scenario) pair over its iterations."""

    expected: tuple[str, ...]  # paths the genomes that ran could take
    ran: tuple[str, ...]
    sometimes_hit: tuple[str, ...]
    sometimes_missed: tuple[str, ...]  # conditions that never held
    always_broken: tuple[str, ...]  # conditions that failed at least once

    @property
    def never_ran(self) -> tuple[str, ...]:
        return tuple(p for p in self.expected if p not in self.ran)

    @property
    def gaps(self) -> tuple[str, ...]:
        """Everything the report flags: paths never run, sometimes-labels never hit,
        always-labels broken."""
        return (
            *self.never_ran,
            *(f"sometimes {label!r}" for label in self.sometimes_missed),
            *(f"always {label!r} broke" for label in self.always_broken),
        )


def coverage_of(iterations: Iterable[Mapping[str, Any]]) -> PathCoverage:
    """Coverage from results.json iterations (``genome``, ``runtime``, ``metrics``).
    Iterations that did not run (skipped) count for nothing; paths are expected only
    from iterations with ``@antifragile`` counters (a test naming a module)."""
    expected: dict[str, None] = {}
    ran: dict[str, None] = {}
    sometimes: dict[str, bool] = {}
    always: dict[str, bool] = {}
    for it in iterations:
        if it.get("outcome") == "skipped":
            continue
        runtime = it.get("runtime") or {}
        if "calls" in runtime:  # measured: without counters nothing is known either way
            expected.update(dict.fromkeys(expected_paths(it.get("genome"))))
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
    )
