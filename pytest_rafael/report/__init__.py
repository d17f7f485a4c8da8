"""Reports of a chaos run: index.html, results.json, summary.md, metrics.prom."""

from __future__ import annotations

from pytest_rafael.report.history import history_from_store
from pytest_rafael.report.junit import iteration_junit_properties, junit_properties
from pytest_rafael.report.writer import ReportPaths, write_plain_failures, write_reports

__all__ = [
    "ReportPaths",
    "history_from_store",
    "iteration_junit_properties",
    "junit_properties",
    "write_plain_failures",
    "write_reports",
]
