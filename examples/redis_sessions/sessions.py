"""A session store backed by a real Redis server: the example service for database faults.

Its resilience comes from the genome of module ``sessions``: ``@antifragile`` applies the
retry / circuit breaker / timeout genes, and the socket timeouts come from the genome's
timeout gene. The shipped genome (``rafael.genome.yaml`` next to this file) is deliberately
poor: no retry and a 30 s timeout.
"""

from __future__ import annotations

import json
from typing import Any

import redis

from pytest_rafael import antifragile
from pytest_rafael.resilience import current_timeout


class SessionStore:
    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port

    def _connect(self) -> redis.Redis:
        timeout = current_timeout() or 30.0
        # One connection per operation and no retries of redis-py's own: the genome is
        # the only resilience here, so what the chaos run measures is the genome's doing.
        return redis.Redis(
            host=self.host,
            port=self.port,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=None,
            single_connection_client=True,
        )

    @antifragile("sessions")
    def save(self, session_id: str, data: dict[str, Any], ttl_s: int = 3600) -> None:
        with self._connect() as client:
            client.set(f"session:{session_id}", json.dumps(data), ex=ttl_s)

    @antifragile("sessions")
    def load(self, session_id: str) -> dict[str, Any] | None:
        with self._connect() as client:
            raw = client.get(f"session:{session_id}")
        return None if raw is None else dict(json.loads(raw))
