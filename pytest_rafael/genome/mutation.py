"""Mutation operators. Every operator takes an explicit :class:`random.Random`, so a seed
reproduces the same mutants, and every mutant is built through :func:`make_gene`, so it
is valid by construction (parameters are clamped to the catalog bounds first).
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from typing import Any

from pytest_rafael.genome.genes import (
    AUTO_ADDABLE,
    CATALOG,
    Gene,
    GenomeError,
    ParamSpec,
    make_gene,
)
from pytest_rafael.genome.genome import Genome

# About +/-20% per step, as the original design asks ...
STEP = 0.2
# ... but a purely local step needs ~20 moves to take a 10 s timeout to 0.1 s, more than a
# CI budget of evaluations. So a share of parameter moves are wide: log-normal jumps
# (sigma 1.5 in log space) for log-scale parameters, uniform draws otherwise.
JUMP_PROB = 0.25
_LOG_SIGMA = 1.5
# Below this a log-scale parameter with a lower bound of 0 is treated as zero.
_TINY = 1e-3


def _clamp(spec: ParamSpec, value: float) -> float | int:
    assert spec.low is not None
    assert spec.high is not None
    value = min(max(value, spec.low), spec.high)
    if spec.type == "int":
        return round(value)
    return round(value, 6)  # keeps YAML short and ids stable across platforms


def mutate_value(spec: ParamSpec, value: float, rng: random.Random, wide: bool) -> float | int:
    """A new value for one numeric parameter: different from ``value`` when the bounds
    allow, clamped, an int for int parameters."""
    assert spec.low is not None
    assert spec.high is not None
    low, high = spec.low, spec.high
    if wide:
        if spec.log_scale:
            base = max(value, _TINY, low)
            new = base * math.exp(rng.gauss(0.0, _LOG_SIGMA))
            if low == 0.0 and new < _TINY:
                new = 0.0
        else:
            new = rng.uniform(low, high)
    elif value == 0 or (spec.log_scale and abs(value) < _TINY):
        # A multiplicative step cannot leave zero: step to a small share of the range.
        new = low + (min(high, low + 1.0) - low) * rng.uniform(0.0, 0.05)
    else:
        new = value * rng.uniform(1.0 - STEP, 1.0 + STEP)
    out = _clamp(spec, new)
    if spec.type == "int" and out == value:
        # +/-20% of a small integer rounds back to itself: move by one instead.
        out = _clamp(spec, value + rng.choice((-1, 1)))
        if out == value:
            out = _clamp(spec, value + (1 if value <= low else -1))
    return out


def mutate_params(genome: Genome, rng: random.Random, jump_prob: float | None = None) -> Genome:
    """Change one or two numeric parameters of the genome's genes."""
    slots = [
        (kind, spec)
        for kind, gene in genome.genes.items()
        for spec in CATALOG[kind]
        if spec.mutable and spec.type in ("int", "float")
    ]
    if not slots:
        return genome
    count = 1 if len(slots) == 1 or rng.random() < 0.6 else 2
    genes = dict(genome.genes)
    for kind, spec in rng.sample(slots, count):
        params = dict(genes[kind].params)
        wide = rng.random() < (JUMP_PROB if jump_prob is None else jump_prob)
        params[spec.name] = mutate_value(spec, params[spec.name], rng, wide)
        genes[kind] = make_gene(kind, params)
    return genome.with_genes(genes)


def crossover(a: Genome, b: Genome, rng: random.Random) -> Genome:
    """Uniform crossover: each gene kind comes from either parent; a kind both carry
    mixes parameters one by one (the original design's "fast retry x conservative
    retry" example)."""
    genes: dict[str, Gene] = {}
    for kind in CATALOG:
        ga, gb = a.genes.get(kind), b.genes.get(kind)
        if ga is not None and gb is not None:
            params = {
                s.name: (ga if rng.random() < 0.5 else gb).params[s.name] for s in CATALOG[kind]
            }
            try:
                genes[kind] = make_gene(kind, params)
            except GenomeError:  # e.g. fallback value from one parent, callable from other
                genes[kind] = ga
        elif (ga is not None or gb is not None) and rng.random() < 0.5:
            gene = ga if ga is not None else gb
            assert gene is not None
            genes[kind] = gene
    return a.with_genes(genes)


def add_gene(
    genome: Genome, rng: random.Random, gene_pool: Sequence[Mapping[str, Any]] = ()
) -> Genome | None:
    """Add a gene the genome lacks: from the vault's ``gene_pool`` (entries
    ``{"kind": ..., "params": {...}}``) when one fits, else a catalog default of an
    :data:`AUTO_ADDABLE` kind. ``None`` when nothing can be added."""
    options: list[Gene] = []
    for entry in gene_pool:
        kind = entry.get("kind")
        if isinstance(kind, str) and kind not in genome.genes:
            try:
                options.append(make_gene(kind, entry.get("params") or {}))
            except GenomeError:
                continue  # a pool entry for another version of the catalog: skip it
    if not options or rng.random() < 0.5:
        options += [make_gene(k, {}) for k in AUTO_ADDABLE if k not in genome.genes]
    if not options:
        return None
    gene = rng.choice(options)
    return genome.with_genes({**genome.genes, gene.kind: gene})


def remove_gene(genome: Genome, rng: random.Random) -> Genome | None:
    if not genome.genes:
        return None
    kind = rng.choice(list(genome.genes))
    return genome.with_genes({k: g for k, g in genome.genes.items() if k != kind})


def mutate(
    genome: Genome,
    rng: random.Random,
    *,
    mate: Genome | None = None,
    gene_pool: Sequence[Mapping[str, Any]] = (),
) -> Genome:
    """One mutant of ``genome`` (structure only; the caller sets generation/lineage).

    Operator mix: parameter mutation 60%, crossover with ``mate`` 15% (when given), add
    gene 15%, remove gene 10%; an operator that cannot apply falls back to parameter
    mutation, and a genome with no genes always gains one.
    """
    if not genome.genes:
        added = add_gene(genome, rng, gene_pool)
        return added if added is not None else genome
    r = rng.random()
    out: Genome | None = None
    if r < 0.15 and mate is not None:
        out = crossover(genome, mate, rng)
    elif r < 0.30:
        out = add_gene(genome, rng, gene_pool)
    elif r < 0.40 and len(genome.genes) > 1:
        out = remove_gene(genome, rng)
    if out is None or out.id == genome.id:
        out = mutate_params(genome, rng)
    return out
