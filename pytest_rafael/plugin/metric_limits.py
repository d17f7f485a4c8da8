"""Bounds on what ``chaos.record`` keeps: every value goes into results.json, the HTML
report and the store, so a runaway string must not grow them by megabytes per
iteration. A long string is cut and says so (the report shows the marker); what cannot
be recorded at all is refused with a one-line error naming the metric."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

MAX_TEXT = 1000  # characters of one recorded string
MAX_METRICS = 100  # metrics of one iteration
MAX_NAME = 100  # characters of a metric's name


def capped(key: str, value: Any, recorded: Mapping[str, Any]) -> Any:
    """``value`` as it will be recorded under ``key``. Raises TypeError or ValueError."""
    if len(key) > MAX_NAME:
        raise ValueError(
            f"chaos.record: metric name longer than {MAX_NAME} characters: {key[:40]!r}..."
        )
    if key not in recorded and len(recorded) >= MAX_METRICS:
        raise ValueError(
            f"chaos.record({key}=...): more than {MAX_METRICS} metrics in one iteration"
        )
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        if not -(2**63) <= value < 2**63:  # what JSON readers and SQLite take
            raise ValueError(f"chaos.record({key}=...): integer outside 64 bits")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"chaos.record({key}=...): expected a finite number, got {value}")
        return value
    if isinstance(value, str):
        if len(value) <= MAX_TEXT:
            return value
        return f"{value[:MAX_TEXT]}... [cut: {len(value):,} characters recorded, {MAX_TEXT} kept]"
    raise TypeError(
        f"chaos.record({key}=...): expected a number or a string, got {type(value).__name__}"
    )


def cut_metrics(nodeid: str, scenario: str, index: int, metrics: Mapping[str, Any]) -> list[str]:
    """One line per value of an iteration that :func:`capped` cut, for the report."""
    return [
        f"{nodeid} [{scenario}] iteration {index}: {key} "
        f"(cut: {value.rpartition('[cut: ')[2].rstrip(']')})"
        for key, value in metrics.items()
        if isinstance(value, str) and len(value) > MAX_TEXT and value.endswith(" kept]")
    ]
