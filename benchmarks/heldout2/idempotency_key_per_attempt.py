"""Idempotency key minted per attempt: the client tags each credit with an idempotency key
so the ledger can drop a retried duplicate, but it draws a fresh key inside the retry
loop. When the reply is lost after the ledger applied the credit, the retry credits the
account a second time."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Mapping

from benchmarks.bugs._kit import (
    BaseSystem,
    LineServer,
    Unavailable,
    Violation,
    chaos_test,
    request_within,
)

DESCRIPTION = "idempotency key drawn inside the retry loop: a lost ack makes the retry credit twice"
MINIMAL = [
    {"kind": "toxic", "target": "ledger", "type": "latency", "attributes": {"latency": 1000}}
]


class System(BaseSystem):
    TARGETS = ("ledger",)

    def __init__(self) -> None:
        super().__init__()
        self.servers["ledger"] = LineServer(self.apply)
        self.seen: set[str] = set()
        self.balance = 0

    def apply(self, line: str) -> str:
        _, key, amount = line.split()
        with self.servers["ledger"].lock:
            if key in self.seen:
                return f"OK {key} duplicate"
            self.seen.add(key)
            self.balance += int(amount)
        return f"OK {key}"

    def reset(self) -> None:
        super().reset()
        with self.servers["ledger"].lock:
            self.seen = set()
            self.balance = 0

    def credit(self, addr: str, amount: int) -> str:
        for _ in range(2):
            key = uuid.uuid4().hex  # the bug: must be drawn once, before the loop
            try:
                return request_within(addr, f"CREDIT {key} {amount}", 0.8)
            except Unavailable:
                continue
        raise Unavailable("ledger unavailable")

    def check(self, addrs: Mapping[str, str]) -> None:
        with contextlib.suppress(Unavailable):
            self.credit(addrs["ledger"], 25)
        time.sleep(0.05)  # let a request already on the wire land
        with self.servers["ledger"].lock:
            balance = self.balance
        if balance > 25:
            raise Violation(f"one credit of 25 left a balance of {balance}")


test_chaos = chaos_test(System)
