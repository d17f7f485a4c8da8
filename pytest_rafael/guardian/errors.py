"""The guardian's own error for bad input (kept apart so its helpers can raise it)."""

from __future__ import annotations

from pytest_rafael.errors import RafaelError


class GuardianError(RafaelError):
    """Bad input to the guardian (unknown proposal, invalid genome, unreadable file)."""
