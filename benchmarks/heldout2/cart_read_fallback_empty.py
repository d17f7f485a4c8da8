"""A fallback that hides data loss: adding an item reads the cart, appends, and writes
the whole cart back. A failed read falls back to an empty cart "so the customer can keep
shopping", and the write-back then replaces the stored cart, erasing everything in it."""

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

DESCRIPTION = "failed cart read falls back to empty, then the write-back erases the stored cart"
MINIMAL = [{"kind": "toxic", "target": "carts", "type": "limit_data", "attributes": {"bytes": 64}}]

ITEMS = [f"sku-{n:05d}" for n in range(3, 90, 3)]  # 29 items, a ~300 byte reply


class System(BaseSystem):
    TARGETS = ("carts",)

    def __init__(self) -> None:
        super().__init__()
        self.servers["carts"] = LineServer(self.serve)
        self.carts: dict[str, list[str]] = {}
        self.reset()

    def serve(self, line: str) -> str:
        verb, user, *rest = line.split()
        with self.servers["carts"].lock:
            if verb == "GET":
                return "CART " + ",".join(self.carts.get(user, []))
            self.carts[user] = rest[0].split(",") if rest else []
        return "OK"

    def reset(self) -> None:
        super().reset()
        with self.servers["carts"].lock:
            self.carts = {"u42": list(ITEMS)}

    def add_item(self, addr: str, user: str, item: str) -> None:
        try:
            reply = request_within(addr, f"GET {user}", 0.3)
            items = [i for i in reply.removeprefix("CART ").split(",") if i]
        except Unavailable:
            items = []  # the bug: an unknown cart is not an empty cart
        items.append(item)
        request_within(addr, f"PUT {user} {','.join(items)}", 0.3)

    def check(self, addrs: Mapping[str, str]) -> None:
        with contextlib.suppress(Unavailable):
            self.add_item(addrs["carts"], "u42", "sku-99999")
        time.sleep(0.05)  # let a write already on the wire land
        with self.servers["carts"].lock:
            cart = list(self.carts["u42"])
        lost = [i for i in ITEMS if i not in cart]
        if lost:
            raise Violation(f"adding one item erased {len(lost)} of {len(ITEMS)} items")


test_chaos = chaos_test(System)
