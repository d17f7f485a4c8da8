"""A circuit breaker that never half-opens: once open, the client refuses every call
forever, even after the dependency is back."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping

from benchmarks.bugs._kit import BaseSystem, LineServer, Unavailable, Violation, chaos_test, request

DESCRIPTION = "breaker that never half-opens: after an outage the client stays cut off"
MINIMAL = [{"kind": "toxic", "target": "api", "type": "reset_peer", "attributes": {"timeout": 0}}]


class Breaker:
    def __init__(self, threshold: int, reset_s: float) -> None:
        self.threshold, self.reset_s = threshold, reset_s
        self.failures = 0
        self.opened_at: float | None = None

    def call(self, addr: str) -> str:
        if self.opened_at is not None:
            # The bug: no half-open probe once reset_s has passed.
            raise Unavailable("circuit open")
        try:
            reply = request(addr, "get", timeout=0.2)
        except Unavailable:
            self.failures += 1
            if self.failures >= self.threshold:
                self.opened_at = time.monotonic()
            raise
        self.failures = 0
        return reply


class System(BaseSystem):
    def __init__(self) -> None:
        super().__init__()
        self.servers["api"] = LineServer(lambda line: "ok")
        self.breaker = Breaker(3, 0.1)

    def reset(self) -> None:
        super().reset()
        self.breaker = Breaker(3, 0.1)

    def check(self, addrs: Mapping[str, str]) -> None:
        for _ in range(4):
            with contextlib.suppress(Unavailable):
                self.breaker.call(addrs["api"])

    def recover(self, addrs: Mapping[str, str]) -> None:
        time.sleep(0.25)  # past reset_s: a probe must go through
        for _ in range(3):
            try:
                self.breaker.call(addrs["api"])
                return
            except Unavailable:
                time.sleep(0.12)
        raise Violation("the dependency is back but the breaker still refuses every call")


test_chaos = chaos_test(System)
