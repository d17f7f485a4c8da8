"""Resilience path coverage for the report: see :mod:`pytest_rafael.common.path_coverage`
(kept in ``common`` because a pair's verdict in :mod:`pytest_rafael.results` rests on it)."""

from __future__ import annotations

from pytest_rafael.common.path_coverage import (
    ALWAYS_PREFIX,
    PATHS,
    SOMETIMES_PREFIX,
    PathCoverage,
    ResiliencePath,
    coverage_of,
    expected_paths,
    pair_coverage,
    paths_ran,
    record_always,
    record_sometimes,
    shipped_iterations,
)

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
