"""A partial read treated as a whole message: the cart client takes whatever one recv()
returns as the complete reply, so a reply that arrives in pieces shows a cart with
items silently missing."""

from __future__ import annotations

from collections.abc import Mapping

from benchmarks.bugs._kit import BaseSystem, LineServer, Unavailable, Violation, chaos_test, connect

DESCRIPTION = "partial read: one recv() is parsed as the whole comma-separated cart reply"
MINIMAL = [
    {
        "kind": "toxic",
        "target": "cart",
        "type": "slicer",
        "attributes": {"average_size": 32, "size_variation": 0, "delay": 20000},
    }
]

ITEMS = [f"sku-{n}" for n in range(101, 113)]


class System(BaseSystem):
    TARGETS = ("cart",)

    def __init__(self) -> None:
        super().__init__()
        self.servers["cart"] = LineServer(self._handle)

    @staticmethod
    def _handle(line: str) -> str:
        return "ITEMS " + ",".join(ITEMS) if line.startswith("ITEMS ") else "ERR bad request"

    def cart(self, addr: str, user: str) -> list[str]:
        sock = connect(addr, timeout=0.5)
        try:
            sock.sendall(f"ITEMS {user}\n".encode())
            data = sock.recv(4096)  # the bug: no loop until the newline
        except OSError as exc:
            raise Unavailable(f"cart: {exc!r}") from None
        finally:
            sock.close()
        text = data.decode(errors="replace").strip()
        if not text.startswith("ITEMS "):
            raise Unavailable(f"unexpected reply {text!r}")
        return [item for item in text[len("ITEMS ") :].split(",") if item]

    def check(self, addrs: Mapping[str, str]) -> None:
        items = self.cart(addrs["cart"], "user-3")
        if items != ITEMS:
            raise Violation(f"cart shows {len(items)} of {len(ITEMS)} items, last {items[-1:]}")


test_chaos = chaos_test(System)
