"""Evolution engine state in the store, so evolution continues across CI runs.

One row per (test, scenario) key. Several runners may evolve the same key at once (two
shards of one CI run, two CI jobs sharing a PostgreSQL store). Each saves the state it
ended with *and the state it started from*; the save reads the row under the store's
write lock, and when someone else saved in between, the two runs' observations are
merged (:func:`merge_states`) instead of one overwriting the other. Every save bumps the
row's ``revision``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from pytest_rafael.store.core import Store

_SCHEMA = """
CREATE TABLE IF NOT EXISTS genome_engine_state (
    key         TEXT PRIMARY KEY,
    module      TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    state_json  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS genome_engine_state_module ON genome_engine_state(module);
"""

# Per-genome evidence that adds up across runs.
_ADDITIVE = ("n", "sum", "ss", "succ")
# Lists of recent measurements (kept newest last) that runs append to.
_APPENDED = ("history", "base_recovery", "base_cpu", "hints")


def ensure_schema(store: Store) -> None:
    store.ensure_schema(_SCHEMA)


def _parse(text: Any) -> dict[str, Any] | None:
    try:
        state = json.loads(text)
    except (TypeError, ValueError):
        return None  # a damaged row: the engine starts afresh rather than failing the run
    return state if isinstance(state, dict) else None


def load_engine_state(store: Store, key: str) -> dict[str, Any] | None:
    """The state saved for ``key`` (``"<nodeid>::<scenario>"``), or ``None``."""
    ensure_schema(store)
    row = store.conn.execute(
        "SELECT state_json FROM genome_engine_state WHERE key = ?", (key,)
    ).fetchone()
    return None if row is None else _parse(row[0])


def _new_items(mine: list[Any], base: list[Any]) -> list[Any]:
    """What a run appended to a list it loaded as ``base`` (lists are trimmed at the
    front, so the base is matched as a prefix of what is left of it)."""
    for start in range(len(base) + 1):
        tail = base[start:]
        if mine[: len(tail)] == tail:
            return mine[len(tail) :]
    return mine


def merge_states(
    base: Mapping[str, Any] | None, mine: Mapping[str, Any], theirs: Mapping[str, Any]
) -> dict[str, Any]:
    """``theirs`` (saved by another runner since this one loaded ``base``) plus what this
    run observed (``mine`` minus ``base``): counts and sums add up, appended lists
    concatenate, maxima stay maxima. Nobody's observations are lost."""
    base = base or {}
    if theirs.get("version") != mine.get("version"):
        return dict(mine)  # another engine format: the newer run's state stands
    out: dict[str, Any] = json.loads(json.dumps(dict(theirs)))
    base_entries = base.get("entries") or {}
    entries: dict[str, Any] = out.setdefault("entries", {})
    for gid, entry in (mine.get("entries") or {}).items():
        before = base_entries.get(gid) or {}
        delta = {f: float(entry.get(f, 0)) - float(before.get(f, 0)) for f in _ADDITIVE}
        if gid not in entries:
            entries[gid] = {**entry, **delta}
        else:
            for f in _ADDITIVE:
                entries[gid][f] = entries[gid].get(f, 0) + delta[f]
            if delta["n"] > 0:
                entries[gid]["evidence"] = entry.get("evidence")
        entries[gid]["n"] = round(entries[gid]["n"])
    out["observations"] = int(theirs.get("observations", 0)) + (
        int(mine.get("observations", 0)) - int(base.get("observations", 0))
    )
    for field in ("runs", "max_generation"):
        out[field] = max(int(theirs.get(field, 0)), int(mine.get(field, 0)))
    for field in _APPENDED:
        added = _new_items(list(mine.get(field) or []), list(base.get(field) or []))
        out[field] = list(theirs.get(field) or []) + added
    return out


def _canonical(state: Mapping[str, Any] | None) -> str:
    return json.dumps(state, sort_keys=True)


def save_engine_state(
    store: Store,
    key: str,
    module: str,
    state: dict[str, Any],
    base: Mapping[str, Any] | None = None,
) -> bool:
    """Save ``state``, which the engine reached from ``base`` (what it loaded; None when
    it started afresh). Returns whether another runner's save was merged in."""
    ensure_schema(store)
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    with store.transaction(lock=False) as conn:
        # Saves of one key take turns (read, merge, write); other keys go side by side.
        store.lock(conn, f"genome_engine_state:{key}")
        row = conn.execute(
            "SELECT state_json FROM genome_engine_state WHERE key = ?", (key,)
        ).fetchone()
        theirs = None if row is None else _parse(row[0])
        merged = theirs is not None and _canonical(theirs) != _canonical(base)
        final = merge_states(base, state, theirs) if merged and theirs else state
        conn.execute(
            "INSERT INTO genome_engine_state (key, module, updated_at, state_json, revision)"
            " VALUES (?, ?, ?, ?, 1) ON CONFLICT (key) DO UPDATE SET module = excluded.module,"
            " updated_at = excluded.updated_at, state_json = excluded.state_json,"
            " revision = genome_engine_state.revision + 1",
            (key, module, now, json.dumps(final, sort_keys=True)),
        )
    return merged


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
