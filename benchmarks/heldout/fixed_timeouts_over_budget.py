"""Timeouts longer than the caller's deadline: a product page has a 1 s budget, but each
of its two backend calls gets a fixed 0.9 s timeout instead of what is left of the
budget, so two slow dependencies together blow the deadline."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping

from benchmarks.bugs._kit import BaseSystem, LineServer, Unavailable, Violation, chaos_test, request

DESCRIPTION = "timeout over the deadline: two sequential calls each get 0.9 s of a 1 s budget"
MINIMAL = [
    {"kind": "toxic", "target": "inventory", "type": "latency", "attributes": {"latency": 600}},
    {"kind": "toxic", "target": "pricing", "type": "latency", "attributes": {"latency": 1000}},
]

BUDGET_S = 1.0
SLACK_S = 0.3  # scheduling noise a correct client may add on top of its budget


class System(BaseSystem):
    TARGETS = ("inventory", "pricing")

    def __init__(self) -> None:
        super().__init__()
        self.servers["inventory"] = LineServer(lambda line: f"STOCK {line.split()[-1]} 12")
        self.servers["pricing"] = LineServer(lambda line: f"PRICE {line.split()[-1]} 1999")

    def product_page(self, addrs: Mapping[str, str], sku: str) -> str:
        # The bug: fixed per-call timeouts, not min(0.9, time left of BUDGET_S).
        stock = request(addrs["inventory"], f"STOCK {sku}", timeout=0.9)
        price = request(addrs["pricing"], f"PRICE {sku}", timeout=0.9)
        return f"{sku}: {stock.split()[-1]} left at {price.split()[-1]}"

    def check(self, addrs: Mapping[str, str]) -> None:
        started = time.monotonic()
        with contextlib.suppress(Unavailable):  # an honest error page is fine, if in time
            self.product_page(addrs, "sku-42")
        elapsed = time.monotonic() - started
        if elapsed > BUDGET_S + SLACK_S:
            raise Violation(f"answered after {elapsed:.2f} s; the caller's budget is {BUDGET_S} s")


test_chaos = chaos_test(System)
