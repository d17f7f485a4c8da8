"""A latency budget (0.5 s) checked between reads: when the budget runs out mid-reply the client
stops reading and parses what it has. A slow reply alone arrives in one piece and a
split reply alone arrives in time; only slow *and* split returns a wrong number."""

from __future__ import annotations

import time
from collections.abc import Mapping

from benchmarks.bugs._kit import BaseSystem, LineServer, Unavailable, Violation, chaos_test, connect

DESCRIPTION = "budget between reads: a slow, split reply is parsed from its first pieces"
MINIMAL = [
    {"kind": "toxic", "target": "ledger", "type": "latency", "attributes": {"latency": 600}},
    {
        "kind": "toxic",
        "target": "ledger",
        "type": "slicer",
        "attributes": {"average_size": 16, "delay": 20000},  # 20 ms: shows under load too
    },
]


class System(BaseSystem):
    TARGETS = ("ledger",)

    def __init__(self) -> None:
        super().__init__()
        self.servers["ledger"] = LineServer(lambda line: "balance alice 125000")

    def balance(self, addr: str) -> int:
        sock = connect(addr, timeout=1.0)
        started = time.monotonic()
        buf = b""
        try:
            sock.sendall(b"BALANCE alice\n")
            while b"\n" not in buf:
                data = sock.recv(4096)
                if not data:
                    raise Unavailable("closed before the end of the reply")
                buf += data
                if time.monotonic() - started > 0.5:
                    break  # the bug: out of budget, keep what was read instead of failing
        except OSError as exc:
            raise Unavailable(str(exc)) from None
        finally:
            sock.close()
        text = buf.decode(errors="replace").strip()
        if not text:
            raise Unavailable("empty reply")
        return int(text.rsplit(" ", 1)[-1])  # trusts that the reply is whole

    def check(self, addrs: Mapping[str, str]) -> None:
        try:
            value = self.balance(addrs["ledger"])
        except Unavailable:
            return
        if value != 125000:
            raise Violation(f"balance read as {value}, the ledger holds 125000")


test_chaos = chaos_test(System)
