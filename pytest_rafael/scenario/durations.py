"""Durations in scenario files: ``250ms``, ``2s``, ``1m``."""

from __future__ import annotations

import math
import re

MAX_SECONDS = 3600.0  # a start/duration beyond an hour is a typo for a 0.2-5 s test

_DURATION_RE = re.compile(r"\s*([0-9.eE+-]+)\s*(ms|s|m)?\s*")

_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, None: 1.0}


def parse_duration(value: str | float) -> float:
    """Seconds from ``"2s"``, ``"250ms"``, ``"1.5m"``, ``"1.5"`` or a bare number (seconds).

    Raises :class:`ValueError` (one line) for anything else, including negative, infinite
    and boolean values.
    """
    problem = f"expected a duration like '2s', '250ms' or 1.5 (seconds), got {value!r}"
    if isinstance(value, bool):
        raise ValueError(problem)
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str):
        match = _DURATION_RE.fullmatch(value)
        if match is None:
            raise ValueError(problem)
        try:
            number = float(match.group(1))
        except ValueError:
            raise ValueError(problem) from None
        unit = match.group(2)
        # Exact for "s" and bare numbers (no multiplication), so dumps round-trip.
        seconds = number if unit in (None, "s") else number * _UNIT_SECONDS[unit]
    else:
        raise ValueError(problem)
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(problem)
    return seconds


def _format_duration(seconds: float) -> str:
    # repr() of a float is the shortest text that reads back to the same float.
    return f"{int(seconds)}s" if float(seconds).is_integer() else f"{float(seconds)!r}s"
