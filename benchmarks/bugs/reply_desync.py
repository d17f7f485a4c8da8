"""A reply read by the wrong request: after a read timeout the client keeps the
connection, and the late reply answers the next request."""

from __future__ import annotations

import socket
from collections.abc import Mapping

from benchmarks.bugs._kit import (
    BaseSystem,
    LineServer,
    Unavailable,
    Violation,
    chaos_test,
    connect,
    read_line,
)

DESCRIPTION = "reply desync: after a timeout, a late reply is taken as the next one's answer"
MINIMAL = [{"kind": "toxic", "target": "db", "type": "latency", "attributes": {"latency": 300}}]


class System(BaseSystem):
    TARGETS = ("db",)

    def __init__(self) -> None:
        super().__init__()
        self.servers["db"] = LineServer(lambda line: "value-of-" + line.split()[-1])

    def check(self, addrs: Mapping[str, str]) -> None:
        sock: socket.socket | None = None
        for key in ("a", "b", "c", "d"):
            if sock is None:
                sock = connect(addrs["db"], timeout=0.2)
            try:
                sock.sendall(f"GET {key}\n".encode())
                value = read_line(sock)  # the bug: a timed-out connection is reused
            except (Unavailable, OSError):
                continue
            if value != f"value-of-{key}":
                raise Violation(f"GET {key} returned {value!r}")
        if sock is not None:
            sock.close()


test_chaos = chaos_test(System)
