"""Genes and genomes: validation, ids, serialisation, diff."""

from __future__ import annotations

import pytest

from pytest_rafael.genome.genes import CATALOG, GenomeError, make_gene
from pytest_rafael.genome.genome import Genome


def test_defaults_fill_every_parameter() -> None:
    gene = make_gene("retry", {"max_attempts": 4})
    assert gene["max_attempts"] == 4
    assert gene["base_delay"] == 0.05
    assert set(gene.params) == {s.name for s in CATALOG["retry"]}


@pytest.mark.parametrize(
    ("kind", "params", "field"),
    [
        ("retry", {"max_attempts": 0}, "p.retry.max_attempts: must be between 1 and 20"),
        ("retry", {"max_attempts": 2.5}, "p.retry.max_attempts: expected an integer"),
        ("retry", {"max_attempts": True}, "p.retry.max_attempts: expected a number"),
        ("timeout", {"seconds": float("nan")}, "p.timeout.seconds: expected a finite number"),
        ("timeout", {"secs": 1}, "p.timeout.secs: unknown parameter"),
        ("teleport", {}, "p.teleport: unknown gene"),
        ("retry", {"on": ["not a name"]}, "p.retry.on: not an exception name"),
        ("fallback", {"value": 1, "callable": "m:f"}, "p.fallback: give either value or callable"),
    ],
)
def test_bad_parameters_name_the_field(kind: str, params: dict[str, object], field: str) -> None:
    with pytest.raises(GenomeError) as info:
        make_gene(kind, params, "p")
    assert str(info.value).startswith(field)
    assert "\n" not in str(info.value)


def test_integral_float_is_accepted_as_int() -> None:
    assert make_gene("retry", {"max_attempts": 3.0})["max_attempts"] == 3
    assert isinstance(make_gene("retry", {"max_attempts": 3.0})["max_attempts"], int)


def test_yaml_on_key_read_as_true_means_on() -> None:
    gene = make_gene("retry", {True: ["ConnectionError"]})
    assert gene["on"] == ("ConnectionError",)


def test_id_is_content_hash_independent_of_order_generation_and_lineage() -> None:
    a = Genome.from_dict(
        "pay",
        {"generation": 1, "genes": {"timeout": {"seconds": 1.0}, "retry": {"max_attempts": 3}}},
    )
    b = Genome.from_dict(
        "pay",
        {
            "generation": 7,
            "lineage": ["x"],
            "genes": {"retry": {"max_attempts": 3}, "timeout": {"seconds": 1.0}},
        },
    )
    c = Genome.from_dict(
        "pay", {"genes": {"retry": {"max_attempts": 4}, "timeout": {"seconds": 1.0}}}
    )
    assert a.id == b.id
    assert a.id != c.id
    assert Genome.from_dict("other", a.to_dict()).id != a.id
    assert list(a.genes) == ["timeout", "retry"]  # runtime order, innermost first


def test_round_trip() -> None:
    g = Genome.from_dict(
        "pay",
        {
            "generation": 2,
            "lineage": ["a1", "b2"],
            "genes": {
                "fallback": {"value": {"status": "degraded", "items": [1, 2]}, "on": ["KeyError"]},
                "cache": {"ttl": 5},
            },
        },
    )
    again = Genome.from_dict("pay", g.to_dict())
    assert again == g
    assert again.to_dict()["genes"]["fallback"]["value"] == {"status": "degraded", "items": [1, 2]}


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ([], "pay: expected a mapping"),
        ({"genes": [], "generation": 1}, "pay.genes: expected a mapping of genes"),
        ({"generation": -1}, "pay.generation: expected a non-negative integer"),
        ({"generations": 1}, "pay.generations: unknown key"),
        ({"lineage": "abc"}, "pay.lineage: expected a list"),
    ],
)
def test_from_dict_errors(doc: object, message: str) -> None:
    with pytest.raises(GenomeError, match="^" + message):
        Genome.from_dict("pay", doc)


def test_diff_lists_each_change() -> None:
    a = Genome.from_dict(
        "pay",
        {"generation": 1, "genes": {"retry": {"max_attempts": 3}, "timeout": {"seconds": 10.0}}},
    )
    b = Genome.from_dict(
        "pay", {"generation": 2, "genes": {"retry": {"max_attempts": 5}, "circuit_breaker": {}}}
    )
    changes = a.diff(b)
    assert "generation: 1 -> 2" in changes
    assert "~ retry.max_attempts: 3 -> 5" in changes
    assert "- timeout: seconds=10.0" in changes
    assert any(c.startswith("+ circuit_breaker: failure_threshold=5") for c in changes)
    assert a.diff(a) == []
