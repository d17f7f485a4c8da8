"""Runtime resilience for application code: ``@antifragile("<module>")`` applies the
module's adopted genome. Imports neither pytest, jinja2 nor the Toxiproxy server."""

from __future__ import annotations

from pytest_rafael.genome.file import GenomeFileError
from pytest_rafael.resilience.antifragile import antifragile
from pytest_rafael.resilience.delivery import NotDelivered, not_delivered
from pytest_rafael.resilience.errors import (
    AttemptTimeout,
    BulkheadFull,
    CircuitOpenError,
    RateLimitExceeded,
    ResilienceError,
)
from pytest_rafael.resilience.pipeline import current_timeout

__all__ = [
    "AttemptTimeout",
    "BulkheadFull",
    "CircuitOpenError",
    "GenomeFileError",
    "NotDelivered",
    "RateLimitExceeded",
    "ResilienceError",
    "antifragile",
    "current_timeout",
    "not_delivered",
]
