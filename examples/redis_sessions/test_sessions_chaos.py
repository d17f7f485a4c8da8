"""Chaos tests of the Redis-backed session store.

Without ``--rafael-chaos`` they run once, without faults, and pass. Under chaos the
shipped genome (no retry, 30 s timeout) fails them: ``db_failure`` resets and then refuses
the database connection for about 1.2 s, ``flaky_network`` resets a quarter of the
connections. Evolution searches for retry / timeout genes that make them pass.
"""

from __future__ import annotations

import time

import pytest
from sessions import SessionStore


@pytest.mark.chaos("db_failure", "flaky_network", module="sessions")
def test_sessions_survive_database_faults(chaos_proxy, redis_server, chaos):
    db = chaos_proxy("db", redis_server.address)
    store = SessionStore(db.host, db.port)
    started = time.monotonic()
    # A user's visit: a dozen requests over about 1.5 s, each saving and reading a session.
    for n in range(12):
        store.save(f"user-{n}", {"user": n, "cart": [n, n + 1]})
        assert store.load(f"user-{n}") == {"user": n, "cart": [n, n + 1]}
        time.sleep(0.1)
    chaos.record(workload_s=round(time.monotonic() - started, 3), budget_s=6.0)
