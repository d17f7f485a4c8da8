"""Mutation operators: always valid, bounded, deterministic under a seed."""

from __future__ import annotations

import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_rafael.genome.genes import AUTO_ADDABLE, CATALOG, ParamSpec
from pytest_rafael.genome.genome import Genome
from pytest_rafael.genome.mutation import (
    add_gene,
    crossover,
    mutate,
    mutate_params,
    mutate_value,
    remove_gene,
)


def _value(spec: ParamSpec) -> st.SearchStrategy[Any]:
    assert spec.low is not None
    assert spec.high is not None
    if spec.type == "int":
        return st.integers(int(spec.low), int(spec.high))
    return st.floats(spec.low, spec.high, allow_nan=False)


@st.composite
def genomes(draw: st.DrawFn) -> Genome:
    kinds = draw(st.sets(st.sampled_from(sorted(CATALOG))))
    genes: dict[str, dict[str, Any]] = {}
    for kind in sorted(kinds):
        params: dict[str, Any] = {}
        for spec in CATALOG[kind]:
            if spec.type in ("int", "float") and draw(st.booleans()):
                params[spec.name] = draw(_value(spec))
        genes[kind] = params
    return Genome.from_dict("svc", {"generation": draw(st.integers(0, 50)), "genes": genes})


def _assert_valid(g: Genome) -> None:
    again = Genome.from_dict(g.module, g.to_dict())  # re-validates every parameter
    assert again.id == g.id
    for kind, gene in g.genes.items():
        for spec in CATALOG[kind]:
            v = gene[spec.name]
            if spec.type == "int":
                assert isinstance(v, int)
                assert not isinstance(v, bool)
            if spec.type in ("int", "float"):
                assert spec.low is not None
                assert spec.high is not None
                assert spec.low <= v <= spec.high


@settings(max_examples=80, deadline=None)
@given(genomes(), genomes(), st.integers(0, 2**32 - 1))
def test_every_operator_yields_a_valid_genome(a: Genome, b: Genome, seed: int) -> None:
    rng = random.Random(seed)
    _assert_valid(mutate_params(a, rng))
    _assert_valid(crossover(a, b, rng))
    pool = [
        {"kind": "bulkhead", "params": {"max_concurrent": 4}},
        {"kind": "retry", "params": {"max_attempts": 99}},
    ]  # an invalid pool entry
    added = add_gene(a, rng, pool)
    if added is not None:
        _assert_valid(added)
        assert len(added.genes) == len(a.genes) + 1
    removed = remove_gene(a, rng)
    if removed is not None:
        _assert_valid(removed)
        assert len(removed.genes) == len(a.genes) - 1
    _assert_valid(mutate(a, rng, mate=b, gene_pool=pool))


@settings(max_examples=120, deadline=None)
@given(
    st.sampled_from([(k, s) for k in CATALOG for s in CATALOG[k] if s.type in ("int", "float")]),
    st.data(),
    st.integers(0, 2**32 - 1),
    st.booleans(),
)
def test_mutate_value_clamped_and_integral(
    ks: tuple[str, ParamSpec], data: st.DataObject, seed: int, wide: bool
) -> None:
    _, spec = ks
    value = data.draw(_value(spec))
    new = mutate_value(spec, value, random.Random(seed), wide)
    assert spec.low is not None
    assert spec.high is not None
    assert spec.low <= new <= spec.high
    if spec.type == "int":
        assert isinstance(new, int)
        if spec.low < spec.high:
            assert new != value  # a small int always moves


def test_local_steps_are_about_twenty_percent() -> None:
    spec = next(s for s in CATALOG["timeout"] if s.name == "seconds")
    rng = random.Random(1)
    ratios = [mutate_value(spec, 10.0, rng, wide=False) / 10.0 for _ in range(500)]
    assert min(ratios) >= 0.8 - 1e-9
    assert max(ratios) <= 1.2 + 1e-9
    assert max(ratios) - min(ratios) > 0.3  # both directions are explored


def test_same_seed_same_mutants() -> None:
    g = Genome.from_dict("svc", {"genes": {"retry": {}, "timeout": {}}})
    run1 = [mutate(g, random.Random(7)).id for _ in range(3)]
    r = random.Random(42)
    seq1 = [mutate(g, r).id for _ in range(20)]
    r = random.Random(42)
    seq2 = [mutate(g, r).id for _ in range(20)]
    assert seq1 == seq2
    assert len(set(run1)) == 1
    assert len(set(seq1)) > 5


def test_add_gene_without_pool_draws_only_safe_kinds() -> None:
    g = Genome("svc")
    kinds: set[str] = set()
    for s in range(50):
        added = add_gene(g, random.Random(s))
        assert added is not None
        kinds |= set(added.genes)
    assert kinds == set(AUTO_ADDABLE)


def test_add_gene_uses_pool() -> None:
    g = Genome.from_dict("svc", {"genes": {k: {} for k in AUTO_ADDABLE}})
    pool = [{"kind": "bulkhead", "params": {"max_concurrent": 3}}]
    added = add_gene(g, random.Random(0), pool)
    assert added is not None
    assert added.genes["bulkhead"]["max_concurrent"] == 3
    full = Genome.from_dict("svc", {"genes": {k: {} for k in CATALOG if k != "fallback"}})
    assert add_gene(full, random.Random(0)) is None
