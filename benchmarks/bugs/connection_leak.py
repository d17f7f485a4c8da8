"""A connection leak on the error path: a failed call never closes its socket."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping

from benchmarks.bugs._kit import (
    BaseSystem,
    LineServer,
    Unavailable,
    Violation,
    chaos_test,
    connect,
    open_tracked,
    read_line,
)

DESCRIPTION = "connection leak: a call that fails leaves its socket open"
MINIMAL = [{"kind": "toxic", "target": "api", "type": "limit_data", "attributes": {"bytes": 0}}]


class System(BaseSystem):
    def __init__(self) -> None:
        super().__init__()
        self.servers["api"] = LineServer(lambda line: "value")

    def fetch(self, addr: str) -> str:
        sock = connect(addr, timeout=0.3)
        sock.sendall(b"get\n")
        reply = read_line(sock)  # the bug: raises before the close below
        sock.close()
        return reply

    def check(self, addrs: Mapping[str, str]) -> None:
        with contextlib.suppress(Unavailable, OSError):
            self.fetch(addrs["api"])
        if open_tracked():
            raise Violation(f"{open_tracked()} socket(s) left open after the call")


test_chaos = chaos_test(System)
