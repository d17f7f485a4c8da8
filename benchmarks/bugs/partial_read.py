"""A partial read treated as a whole message: one recv() is parsed as the reply."""

from __future__ import annotations

from collections.abc import Mapping

from benchmarks.bugs._kit import BaseSystem, LineServer, Unavailable, Violation, chaos_test, connect

DESCRIPTION = "partial read: a reply arriving in pieces is parsed from its first piece"
MINIMAL = [
    {
        "kind": "toxic",
        "target": "ledger",
        "type": "slicer",
        "attributes": {"average_size": 8, "delay": 20000},  # 20 ms: shows under load too
    }
]
EXPECTED = "balance alice 125000"


class System(BaseSystem):
    TARGETS = ("ledger",)

    def __init__(self) -> None:
        super().__init__()
        self.servers["ledger"] = LineServer(lambda line: EXPECTED)

    def balance(self, addr: str) -> int:
        sock = connect(addr, timeout=0.5)
        try:
            sock.sendall(b"BALANCE alice\n")
            data = sock.recv(4096)  # the bug: one recv is not one message
        except OSError as exc:
            raise Unavailable(str(exc)) from None
        finally:
            sock.close()
        if not data:
            raise Unavailable("closed")
        return int(data.decode(errors="replace").split()[2])

    def check(self, addrs: Mapping[str, str]) -> None:
        try:
            value = self.balance(addrs["ledger"])
        except Unavailable:
            return
        if value != 125000:
            raise Violation(f"balance read as {value}, the ledger holds 125000")


test_chaos = chaos_test(System)
