"""A breaker that never half-opens under steady traffic: the client's error handler counts
the breaker's own rejections as dependency failures, and every failure past the threshold
re-stamps the moment the breaker opened. As long as callers keep arriving faster than the
cool-down, the breaker stays open long after the dependency recovered."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping

from benchmarks.bugs._kit import (
    BaseSystem,
    LineServer,
    Unavailable,
    Violation,
    chaos_test,
    request_within,
)

DESCRIPTION = "breaker rejections counted as failures re-open it: never half-opens under traffic"
MINIMAL = [
    {"kind": "toxic", "target": "quotes", "type": "reset_peer", "attributes": {"timeout": 0}}
]

THRESHOLD = 3
COOLDOWN_S = 0.25


class Breaker:
    def __init__(self) -> None:
        self.failures = 0
        self.opened_at: float | None = None

    def allow(self) -> bool:
        return self.opened_at is None or time.monotonic() - self.opened_at >= COOLDOWN_S

    def success(self) -> None:
        self.failures = 0
        self.opened_at = None

    def failure(self) -> None:
        self.failures += 1
        if self.failures >= THRESHOLD:
            self.opened_at = time.monotonic()


class System(BaseSystem):
    TARGETS = ("quotes",)

    def __init__(self) -> None:
        super().__init__()
        self.servers["quotes"] = LineServer(lambda line: "QUOTE EURUSD 1.0842")
        self.breaker = Breaker()

    def reset(self) -> None:
        super().reset()
        self.breaker = Breaker()

    def quote(self, addr: str) -> str:
        try:
            if not self.breaker.allow():
                raise Unavailable("breaker open")
            reply = request_within(addr, "QUOTE EURUSD", 0.3)
        except Unavailable:
            self.breaker.failure()  # the bug: a rejection is not a failure of the dependency
            raise
        self.breaker.success()
        return reply

    def check(self, addrs: Mapping[str, str]) -> None:
        for _ in range(6):
            with contextlib.suppress(Unavailable):
                self.quote(addrs["quotes"])
            time.sleep(0.02)

    def recover(self, addrs: Mapping[str, str]) -> None:
        # The quote service is healthy again; callers keep coming every 50 ms. A breaker
        # with a 0.25 s cool-down lets a probe through and closes well within 1.2 s.
        end = time.monotonic() + 1.2
        while time.monotonic() < end:
            with contextlib.suppress(Unavailable):
                self.quote(addrs["quotes"])
                return
            time.sleep(0.05)
        raise Violation(f"breaker still rejecting 1.2 s after recovery (cool-down {COOLDOWN_S} s)")


test_chaos = chaos_test(System)
