"""Vault advice for a chaos run: the recommendations the report shows for each
vulnerability, as one JSON-ready section (``results.json`` ``vault`` key).

A vulnerability is a (test, scenario) pair where some scored iteration failed or errored
(not when the test fails without faults too), or whose
best fitness stayed below its gate. Its error line and the genes its genome already has
steer :meth:`Vault.recommend`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pytest_rafael.results import TestResult

from .vault import Vault

FAILING = ("failed", "error")


def genes_of(genome: Mapping[str, Any] | None) -> set[str]:
    """Gene names of a genome dict, either ``{"genes": {name: params}}`` (genome file
    entry) or ``{name: params}`` (genes only)."""
    if not genome:
        return set()
    genes = genome.get("genes", genome)
    return {str(name) for name in genes} if isinstance(genes, Mapping) else set()


def is_vulnerable(test: TestResult) -> bool:
    # A test that fails without faults, or whose iterations errored before anything was
    # measured (not scored), needs fixing, not a resilience pattern.
    if test.fails_without_faults:
        return False
    if any(i.outcome in FAILING and i.fitness is not None for i in test.iterations):
        return True
    return (
        test.min_fitness is not None
        and test.best_fitness is not None
        and test.best_fitness < test.min_fitness
    )


def advise(vault: Vault, tests: Iterable[TestResult], limit: int = 3) -> list[dict[str, Any]]:
    """``[{nodeid, scenario, module, error, genes, recommendations: [...]}]`` for each
    vulnerable test, in the order given."""
    section: list[dict[str, Any]] = []
    for test in tests:
        if not is_vulnerable(test):
            continue
        failed = [i for i in test.iterations if i.outcome in FAILING]
        error = next((i.error for i in failed if i.error), None)
        # The genes the shipped genome has: the best candidate if known, else the last run.
        genome = test.best_genome or (test.iterations[-1].genome if test.iterations else None)
        have = genes_of(genome)
        recs = vault.recommend(test.scenario, error=error, genome_genes=have, limit=limit)
        section.append(
            {
                "nodeid": test.nodeid,
                "scenario": test.scenario,
                "module": test.module,
                "error": error,
                "genes": sorted(have),
                "recommendations": [
                    {
                        "pattern_id": r.pattern.id,
                        "name": r.pattern.name,
                        "category": r.pattern.category,
                        "gene": r.pattern.gene.name if r.pattern.gene else None,
                        "reliability": round(vault.score(r.pattern), 3),
                        "why": r.why,
                    }
                    for r in recs
                ],
            }
        )
    return section
