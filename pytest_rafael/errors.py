"""The root of every error pytest-rafael raises on purpose.

Each concern keeps its own error classes (and their standard bases, such as
``ValueError``, so existing ``except`` clauses keep working); they all also derive from
:class:`RafaelError`, so a caller that wants "anything rafael refused" catches one type.
"""

from __future__ import annotations


class RafaelError(Exception):
    """An error pytest-rafael raised deliberately; its message is one line for the user."""
