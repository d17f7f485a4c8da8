"""Evidence for vault patterns: the fitness measured each time a pattern's gene was adopted
by the genome engine, kept in the rafael store.

The vault blends this observed fitness with each pattern's declared reliability
(:func:`pytest_rafael.vault.blend`), so a pattern that keeps working in this project's
chaos runs climbs the rankings and one that keeps failing sinks.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone

from pytest_rafael.store.core import Store

SCHEMA = """
CREATE TABLE IF NOT EXISTS vault_evidence (
    pattern_id  TEXT NOT NULL,
    module      TEXT NOT NULL,
    fitness     REAL NOT NULL,
    run_id      TEXT NOT NULL,
    recorded_at TEXT NOT NULL,
    PRIMARY KEY (pattern_id, module, run_id)
);
CREATE INDEX IF NOT EXISTS vault_evidence_pattern ON vault_evidence (pattern_id)
"""


def ensure_schema(store: Store) -> None:
    store.ensure_schema(SCHEMA)


def record_adoption(
    store: Store, pattern_id: str, module: str, fitness: float, run_id: str
) -> None:
    """Record that ``module`` adopted the gene of ``pattern_id`` in ``run_id`` and scored
    ``fitness`` (0..1, clamped). One row per (pattern, module, run): recording the same
    adoption twice (a re-run report) replaces it instead of counting it twice."""
    if not isinstance(fitness, int | float) or math.isnan(fitness):
        raise ValueError(f"fitness must be a number, got {fitness!r}")
    ensure_schema(store)
    with store.transaction() as conn:
        conn.execute(
            "INSERT INTO vault_evidence (pattern_id, module, fitness, run_id, recorded_at)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (pattern_id, module, run_id) DO UPDATE"
            " SET fitness = excluded.fitness, recorded_at = excluded.recorded_at",
            (
                pattern_id,
                module,
                min(max(float(fitness), 0.0), 1.0),
                run_id,
                datetime.now(timezone.utc).isoformat(timespec="seconds"),
            ),
        )


def observed_scores(store: Store) -> dict[str, tuple[float, int]]:
    """``{pattern_id: (mean observed fitness, number of adoptions)}``."""
    ensure_schema(store)
    rows = store.conn.execute(
        "SELECT pattern_id, AVG(fitness), COUNT(*) FROM vault_evidence GROUP BY pattern_id"
    ).fetchall()
    return {str(r[0]): (float(r[1]), int(r[2])) for r in rows}
