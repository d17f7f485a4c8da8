"""A server that stores a truncated request: a body cut in transit is saved as the
whole value."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Mapping

from benchmarks.bugs._kit import BaseSystem, LineServer, Unavailable, Violation, chaos_test, request

DESCRIPTION = "truncated request stored: a write cut upstream is saved as a shorter value"
MINIMAL = [
    {
        "kind": "toxic",
        "target": "store",
        "type": "limit_data",
        "stream": "upstream",
        "attributes": {"bytes": 12},
    }
]
VALUE = "0123456789abcdef"


class RawServer(LineServer):
    """Frames a request by the close of the connection, not by its length (the bug)."""

    def __init__(self) -> None:
        super().__init__(lambda line: None)
        self.stored: list[str] = []

    def _handle(self, conn: socket.socket) -> None:
        buf = b""
        with conn, contextlib.suppress(OSError):
            conn.settimeout(1.0)
            while data := conn.recv(4096):
                buf += data
                if buf.endswith(b"\n"):
                    break
            text = buf.decode(errors="replace").strip()
            if text.startswith("SET "):
                with self.lock:
                    self.stored.append(text[4:])
                conn.sendall(b"ok\n")


class System(BaseSystem):
    TARGETS = ("store",)

    def __init__(self) -> None:
        super().__init__()
        self.server = RawServer()
        self.servers["store"] = self.server
        self._lock = threading.Lock()

    def reset(self) -> None:
        super().reset()
        with self.server.lock:
            self.server.stored.clear()

    def check(self, addrs: Mapping[str, str]) -> None:
        with contextlib.suppress(Unavailable):
            request(addrs["store"], f"SET {VALUE}", timeout=0.3)

    def recover(self, addrs: Mapping[str, str]) -> None:
        import time

        time.sleep(0.05)
        with self.server.lock:
            bad = [v for v in self.server.stored if v != VALUE]
        if bad:
            raise Violation(f"stored a truncated value: {bad}")


test_chaos = chaos_test(System)
