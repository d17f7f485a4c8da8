"""A retried non-idempotent write: a deposit whose reply came late is sent again, and
the server applies it twice."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Mapping

from benchmarks.bugs._kit import BaseSystem, LineServer, Unavailable, Violation, chaos_test, request

DESCRIPTION = "retry of a non-idempotent write: a slow reply makes the client deposit twice"
MINIMAL = [{"kind": "toxic", "target": "bank", "type": "latency", "attributes": {"latency": 400}}]


class System(BaseSystem):
    TARGETS = ("bank",)

    def __init__(self) -> None:
        super().__init__()
        self.balance = 0
        self._lock = threading.Lock()
        self.servers["bank"] = LineServer(self._handle)

    def _handle(self, line: str) -> str:
        _, amount = line.split()
        with self._lock:
            self.balance += int(amount)
            return f"ok {self.balance}"

    def reset(self) -> None:
        super().reset()
        with self._lock:
            self.balance = 0

    def deposit(self, addr: str, amount: int) -> None:
        for _ in range(3):  # the bug: a write retried without an idempotency key
            try:
                request(addr, f"DEPOSIT {amount}", timeout=0.2)
                return
            except Unavailable:
                continue
        raise Unavailable("bank unavailable")

    def check(self, addrs: Mapping[str, str]) -> None:
        with contextlib.suppress(Unavailable):
            self.deposit(addrs["bank"], 100)

    def recover(self, addrs: Mapping[str, str]) -> None:
        # Late requests still in flight land before the verdict.
        import time

        time.sleep(0.05)
        with self._lock:
            balance = self.balance
        if balance not in (0, 100):
            raise Violation(f"one deposit of 100 left a balance of {balance}")


test_chaos = chaos_test(System)
