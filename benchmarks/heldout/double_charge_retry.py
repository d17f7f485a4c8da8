"""Retry of a non-idempotent write: the payment client retries a CHARGE whose reply came
late, with no idempotency key, so the processor charges the order once per attempt."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Mapping

from benchmarks.bugs._kit import BaseSystem, LineServer, Unavailable, Violation, chaos_test, request

DESCRIPTION = "retry of a non-idempotent write: a charge whose reply was slow is charged again"
MINIMAL = [
    {"kind": "toxic", "target": "payments", "type": "latency", "attributes": {"latency": 400}}
]


class System(BaseSystem):
    TARGETS = ("payments",)

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self.charges: list[tuple[str, int]] = []
        self.servers["payments"] = LineServer(self._handle)

    def _handle(self, line: str) -> str:
        parts = line.split()  # CHARGE <order> <cents>
        if len(parts) != 3 or parts[0] != "CHARGE":
            return "ERR bad request"
        with self._lock:
            self.charges.append((parts[1], int(parts[2])))
            total = sum(cents for order, cents in self.charges if order == parts[1])
        return f"CHARGED {parts[1]} {total}"

    def reset(self) -> None:
        super().reset()
        with self._lock:
            self.charges = []

    def pay(self, addr: str, order: str, cents: int) -> str:
        for attempt in range(3):
            try:
                # The bug: a timed-out charge may have gone through, yet it is sent again
                # without a key the processor could deduplicate on.
                return request(addr, f"CHARGE {order} {cents}", timeout=0.25)
            except Unavailable:
                time.sleep(0.05 * (attempt + 1))
        raise Unavailable("payments unavailable")

    def check(self, addrs: Mapping[str, str]) -> None:
        with contextlib.suppress(Unavailable):
            self.pay(addrs["payments"], "order-7", 1250)
        with self._lock:
            charged = [cents for order, cents in self.charges if order == "order-7"]
        if len(charged) > 1:
            raise Violation(f"order-7 charged {len(charged)} times ({sum(charged)} cents)")


test_chaos = chaos_test(System)
