"""The text of results.json: one encoding for the report file and the stored document.

The store keeps each run's document in exactly this form, so ``rafael report`` writes
results.json from the stored text instead of encoding 10,000 iterations again.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any


def results_json_text(results: Mapping[str, Any]) -> str:
    """results.json, indented for the first three levels (run, tests, one test) and compact
    below: each field of a test on one line, each iteration on its own line. The same JSON
    value as ``json.dumps(indent=2)``, written by the C encoder (``indent`` forces the
    pure-Python one, several times slower on a 10,000-iteration run); a diff shows one line
    per changed iteration."""
    return _pretty(results, 0) + "\n"


_COMPACT = json.JSONEncoder(default=str)
_INDENTED_LEVELS = 3


def _pretty(value: Any, level: int, one_per_line: bool = False) -> str:
    pad, inner = "  " * level, "  " * (level + 1)
    if isinstance(value, Mapping) and value and level < _INDENTED_LEVELS:
        items = [
            f"{inner}{_COMPACT.encode(str(k))}: {_pretty(v, level + 1, k == 'iterations')}"
            for k, v in value.items()
        ]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(value, (list, tuple)) and value and (level < _INDENTED_LEVELS or one_per_line):
        if one_per_line:
            rows = [inner + _COMPACT.encode(v) for v in value]
        else:
            rows = [inner + _pretty(v, level + 1) for v in value]
        return "[\n" + ",\n".join(rows) + "\n" + pad + "]"
    return _COMPACT.encode(value)


def is_results_text(text: str) -> bool:
    """Whether ``text`` is in :func:`results_json_text`'s form (a compact encoding, as
    stores written before this form was kept hold, never starts with a line break)."""
    return text.startswith("{\n") and text.endswith("}\n")
