"""The guardian's own error for bad input (kept apart so its helpers can raise it)."""

from __future__ import annotations


class GuardianError(Exception):
    """Bad input to the guardian (unknown proposal, invalid genome, unreadable file)."""
