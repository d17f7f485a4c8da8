"""The rafael store: runs, evolution state, the audit chain and proposals, in
SQLite or PostgreSQL. ``from pytest_rafael.store import Store`` is the public path;
the backends, the schema migrations and ``rafael store`` live in the submodules.
"""

from __future__ import annotations

from pytest_rafael.common.store_url import is_store_url
from pytest_rafael.store.core import (
    APPLICATION_ID,
    BUSY_TIMEOUT_MS,
    RUNS_SCHEMA,
    Store,
    StoreDatabaseError,
    StoreError,
    redacted,
    store_label,
    table_columns,
)

__all__ = [
    "APPLICATION_ID",
    "BUSY_TIMEOUT_MS",
    "RUNS_SCHEMA",
    "Store",
    "StoreDatabaseError",
    "StoreError",
    "is_store_url",
    "redacted",
    "store_label",
    "table_columns",
]
