"""Fixtures for each held-out bug's own chaos test (``pytest benchmarks/heldout2/<bug>.py``):
the same ``planted`` fixture as the tuned corpus."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.bugs.conftest import planted  # noqa: E402

__all__ = ["planted"]
