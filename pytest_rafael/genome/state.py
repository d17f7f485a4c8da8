"""Evolution engine state in the SQLite store, so evolution continues across CI runs.

One row per (test, scenario) key; the controller is the only writer during a run (see
:mod:`pytest_rafael.store`).
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from pytest_rafael.store import Store

_SCHEMA = """
CREATE TABLE IF NOT EXISTS genome_engine_state (
    key         TEXT PRIMARY KEY,
    module      TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    state_json  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS genome_engine_state_module ON genome_engine_state(module);
"""


def ensure_schema(store: Store) -> None:
    store.ensure_schema(_SCHEMA)


def load_engine_state(store: Store, key: str) -> dict[str, Any] | None:
    """The state saved for ``key`` (``"<nodeid>::<scenario>"``), or ``None``."""
    ensure_schema(store)
    row = store.conn.execute(
        "SELECT state_json FROM genome_engine_state WHERE key = ?", (key,)
    ).fetchone()
    if row is None:
        return None
    try:
        state = json.loads(row[0])
    except ValueError:
        return None  # a damaged row: the engine starts afresh rather than failing the run
    return state if isinstance(state, dict) else None


def save_engine_state(store: Store, key: str, module: str, state: dict[str, Any]) -> None:
    ensure_schema(store)
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    with store.transaction() as conn:
        conn.execute(
            "INSERT OR REPLACE INTO genome_engine_state VALUES (?, ?, ?, ?)",
            (key, module, now, json.dumps(state, sort_keys=True)),
        )


def engine_states(store: Store, module: str | None = None) -> list[tuple[str, str, str]]:
    """``(key, module, updated_at)`` of every saved engine, optionally for one module."""
    ensure_schema(store)
    sql = "SELECT key, module, updated_at FROM genome_engine_state"
    rows = (
        store.conn.execute(sql + " WHERE module = ? ORDER BY key", (module,))
        if module
        else store.conn.execute(sql + " ORDER BY key")
    ).fetchall()
    return [(r[0], r[1], r[2]) for r in rows]
