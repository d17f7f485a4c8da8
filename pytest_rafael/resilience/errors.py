"""Exceptions raised by the resilience runtime itself (not by the protected call)."""

from __future__ import annotations

from pytest_rafael.errors import RafaelError


class ResilienceError(RafaelError):
    """Base of the runtime's own exceptions."""


class CircuitOpenError(ResilienceError):
    """The module's circuit breaker is open: the call was not attempted."""


class AttemptTimeout(ResilienceError, TimeoutError):
    """One attempt took longer than the ``timeout`` gene allows."""


class RateLimitExceeded(ResilienceError):
    """No rate-limit token was available within ``max_wait``."""


class BulkheadFull(ResilienceError):
    """All ``max_concurrent`` slots are busy and the queue (``max_queue``) is full."""


# Rejections decided locally, before the dependency was touched: they say nothing about
# the dependency's health, so the circuit breaker does not count them.
LOCAL_REJECTIONS: tuple[type[BaseException], ...] = (
    CircuitOpenError,
    RateLimitExceeded,
    BulkheadFull,
)
