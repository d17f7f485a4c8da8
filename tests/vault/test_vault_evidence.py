"""Observed fitness of adopted pattern genes is stored and moves the effective score."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_rafael.store.core import Store
from pytest_rafael.vault import Vault, blend
from pytest_rafael.vault.evidence import observed_scores, record_adoption

PATTERN = "python-circuit-breaker"


@pytest.fixture
def store(tmp_path: Path) -> Store:
    with Store(tmp_path / "rafael.db") as s:
        yield s  # type: ignore[misc]


def test_record_and_read_back(store: Store) -> None:
    assert observed_scores(store) == {}
    record_adoption(store, PATTERN, "payments", 0.6, "run-1")
    record_adoption(store, PATTERN, "orders", 0.8, "run-1")
    record_adoption(store, "ttl-lru-cache", "payments", 1.7, "run-2")  # clamped to 1
    scores = observed_scores(store)
    assert scores[PATTERN] == (pytest.approx(0.7), 2)
    assert scores["ttl-lru-cache"] == (1.0, 1)


def test_same_adoption_recorded_twice_counts_once(store: Store) -> None:
    record_adoption(store, PATTERN, "payments", 0.2, "run-1")
    record_adoption(store, PATTERN, "payments", 0.4, "run-1")
    assert observed_scores(store)[PATTERN] == (pytest.approx(0.4), 1)


def test_nan_fitness_is_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="fitness must be a number"):
        record_adoption(store, PATTERN, "payments", float("nan"), "run-1")


def test_reliability_moves_with_evidence_over_runs(store: Store) -> None:
    vault = Vault.load()
    declared = vault.get(PATTERN).reliability_score
    history = []
    for run in range(10):  # the breaker's gene keeps scoring poorly in this project
        record_adoption(store, PATTERN, "payments", 0.3, f"run-{run}")
        history.append(vault.with_evidence(observed_scores(store)).score(PATTERN))
    assert history == sorted(history, reverse=True)
    assert history[0] < declared
    assert 0.3 < history[-1] < history[0]
    # ... and it sinks below a comparable pattern without evidence.
    moved = vault.with_evidence(observed_scores(store))
    assert moved.search(category="circuit_breaker", tech="python")[-1].id == PATTERN
    assert moved.observed(PATTERN) == (pytest.approx(0.3), 10)
    assert moved.get(PATTERN).reliability_score == declared  # declared stays as written


def test_evidence_survives_reopening(tmp_path: Path) -> None:
    with Store(tmp_path / "r.db") as s:
        record_adoption(s, PATTERN, "payments", 0.9, "run-1")
    with Store(tmp_path / "r.db") as s:
        assert observed_scores(s)[PATTERN] == (pytest.approx(0.9), 1)
    rows = sqlite3.connect(tmp_path / "r.db").execute("SELECT * FROM vault_evidence").fetchall()
    assert len(rows) == 1


@given(declared=st.floats(0, 1), observed=st.floats(-5, 5), n=st.integers(0, 10_000))
def test_blend_stays_between_declared_and_observed(
    declared: float, observed: float, n: int
) -> None:
    value = blend(declared, observed, n)
    clamped = min(max(observed, 0.0), 1.0)
    assert min(declared, clamped) - 1e-9 <= value <= max(declared, clamped) + 1e-9
    assert blend(declared, None, n) == declared
    assert blend(declared, observed, 0) == declared
