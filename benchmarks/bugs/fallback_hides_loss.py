"""A fallback that hides data loss: a failed read of the cart falls back to an empty
cart, which the next write stores over the real one."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Mapping

from benchmarks.bugs._kit import BaseSystem, LineServer, Unavailable, Violation, chaos_test, request

DESCRIPTION = "fallback hides data loss: a failed read becomes an empty cart that is saved"
MINIMAL = [{"kind": "toxic", "target": "carts", "type": "limit_data", "attributes": {"bytes": 4}}]


class System(BaseSystem):
    TARGETS = ("carts",)

    def __init__(self) -> None:
        super().__init__()
        self.items = ["book", "lamp"]
        self._lock = threading.Lock()
        self.servers["carts"] = LineServer(self._handle)

    def _handle(self, line: str) -> str:
        with self._lock:
            if line.startswith("PUT "):
                self.items = [i for i in line[4:].split(",") if i]
                return "ok"
            return "cart " + ",".join(self.items)

    def reset(self) -> None:
        super().reset()
        with self._lock:
            self.items = ["book", "lamp"]

    def add_item(self, addr: str, item: str) -> None:
        try:
            reply = request(addr, "GET", timeout=0.3)
            items = [i for i in reply.removeprefix("cart ").split(",") if i]
        except Unavailable:
            items = []  # the bug: "no cart" stands in for "could not read the cart"
        for _ in range(3):
            try:
                request(addr, "PUT " + ",".join([*items, item]), timeout=0.3)
                return
            except Unavailable:
                time.sleep(0.1)
        raise Unavailable("could not save the cart")

    def check(self, addrs: Mapping[str, str]) -> None:
        with contextlib.suppress(Unavailable):
            self.add_item(addrs["carts"], "pen")

    def recover(self, addrs: Mapping[str, str]) -> None:
        time.sleep(0.05)
        with self._lock:
            items = list(self.items)
        if not {"book", "lamp"} <= set(items):
            raise Violation(f"the cart lost items: {items}")


test_chaos = chaos_test(System)
