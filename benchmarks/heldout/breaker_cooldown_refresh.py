"""A breaker that never half-opens: the client's slow-call circuit breaker restarts its
cooldown on every call it rejects, so a caller that keeps asking (more often than the
cooldown) keeps it open forever, long after the dependency is healthy again."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping

from benchmarks.bugs._kit import BaseSystem, LineServer, Unavailable, Violation, chaos_test, request

DESCRIPTION = "breaker never half-opens: each rejected call restarts the 0.2 s cooldown"
MINIMAL = [{"kind": "toxic", "target": "ledger", "type": "latency", "attributes": {"latency": 300}}]


class Breaker:
    """Opens after ``threshold`` failed or slow calls in a row; after ``cooldown_s`` it
    should let one probe through (half-open)."""

    def __init__(self, threshold: int = 3, cooldown_s: float = 0.2) -> None:
        self.threshold = threshold
        self.cooldown_s = cooldown_s
        self.failures = 0
        self.opened_at: float | None = None

    def allow(self) -> bool:
        if self.opened_at is None:
            return True
        now = time.monotonic()
        if now - self.opened_at >= self.cooldown_s:
            return True  # half-open: one probe
        self.opened_at = now  # the bug: a rejected call pushes the probe further away
        return False

    def record(self, ok: bool) -> None:
        if ok:
            self.failures, self.opened_at = 0, None
            return
        self.failures += 1
        if self.failures >= self.threshold:
            self.opened_at = time.monotonic()


class System(BaseSystem):
    TARGETS = ("ledger",)

    def __init__(self) -> None:
        super().__init__()
        self.servers["ledger"] = LineServer(lambda line: f"BALANCE {line.split()[-1]} 310")
        self.breaker = Breaker()

    def reset(self) -> None:
        super().reset()
        self.breaker = Breaker()

    def balance(self, addr: str, account: str) -> str:
        if not self.breaker.allow():
            raise Unavailable("breaker open")
        started = time.monotonic()
        try:
            reply = request(addr, f"BALANCE {account}", timeout=0.5)
        except Unavailable:
            self.breaker.record(ok=False)
            raise
        self.breaker.record(ok=time.monotonic() - started < 0.2)  # slow counts as failed
        return reply

    def check(self, addrs: Mapping[str, str]) -> None:
        for _ in range(4):
            with contextlib.suppress(Unavailable):
                self.balance(addrs["ledger"], "acct-9")

    def recover(self, addrs: Mapping[str, str]) -> None:
        # The ledger is healthy again; a dashboard polls every 50 ms.
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            with contextlib.suppress(Unavailable):
                self.balance(addrs["ledger"], "acct-9")
                return
            time.sleep(0.05)
        raise Violation("breaker still open 1.5 s after the outage (cooldown 0.2 s)")


test_chaos = chaos_test(System)
