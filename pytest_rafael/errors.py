"""The root of every error pytest-rafael raises on purpose.

Each concern keeps its own error classes (and their standard bases, such as
``ValueError``, so existing ``except`` clauses keep working); they all also derive from
:class:`RafaelError`, so a caller that wants "anything rafael refused" catches one type.
"""

from __future__ import annotations


class RafaelError(Exception):
    """An error pytest-rafael raised deliberately; its message is one line for the user."""


class SetupError(RafaelError):
    """A chaos test that cannot run as its scenario says (a replayed step naming no rule
    of the machine, a machine without its proxies). Raised out of a test call, it makes
    the iteration an error that is not scored: the code under test never had its chance.
    Errors the code under test may meet (an open breaker, a refused bulkhead) are not
    setup errors."""
