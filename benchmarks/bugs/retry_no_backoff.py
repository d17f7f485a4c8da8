"""Retry without backoff: the client hammers a failing dependency with back-to-back
retries instead of spacing them out."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping

from benchmarks.bugs._kit import BaseSystem, LineServer, Unavailable, Violation, chaos_test, request

DESCRIPTION = "retry without backoff: 20 back-to-back attempts against a failing dependency"
MINIMAL = [{"kind": "toxic", "target": "api", "type": "reset_peer", "attributes": {"timeout": 0}}]


class System(BaseSystem):
    def __init__(self) -> None:
        super().__init__()
        self.servers["api"] = LineServer(lambda line: "pong")
        self.attempts: list[float] = []

    def reset(self) -> None:
        super().reset()
        self.attempts = []

    def ping(self, addr: str) -> str:
        for _ in range(20):  # the bug: no sleep between attempts
            self.attempts.append(time.monotonic())
            try:
                return request(addr, "ping", timeout=0.3)
            except Unavailable:
                continue
        raise Unavailable("api unavailable")

    def check(self, addrs: Mapping[str, str]) -> None:
        with contextlib.suppress(Unavailable):
            self.ping(addrs["api"])
        # A correct client makes a few attempts, at least 20 ms apart.
        fast = [
            b - a for a, b in zip(self.attempts, self.attempts[1:], strict=False) if b - a < 0.02
        ]
        if len(self.attempts) > 4 and fast:
            raise Violation(f"{len(self.attempts)} attempts, {len(fast)} retried within 20 ms")


test_chaos = chaos_test(System)
