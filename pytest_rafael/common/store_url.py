"""Whether a store argument names a PostgreSQL server: the one test the
option table, the ``rafael`` commands and the store share."""

from __future__ import annotations


def is_store_url(target: object) -> bool:
    """Whether ``target`` names a PostgreSQL store (``postgresql://`` or ``postgres://``)."""
    return isinstance(target, str) and target.split("://", 1)[0] in ("postgresql", "postgres")
