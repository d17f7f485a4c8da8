"""A reply framed by the close of the connection: the client reads until EOF, so a
slow close delays every answer."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Mapping

from benchmarks.bugs._kit import BaseSystem, LineServer, Unavailable, Violation, chaos_test, connect

DESCRIPTION = "read until close: a slow connection close holds back an answer already received"
MINIMAL = [{"kind": "toxic", "target": "api", "type": "slow_close", "attributes": {"delay": 1000}}]


class ClosingServer(LineServer):
    """Answers one line and closes (HTTP/1.0 style)."""

    def _handle(self, conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            buf = b""
            while b"\n" not in buf and (data := conn.recv(4096)):
                buf += data
            conn.sendall(b"answer\n")


class System(BaseSystem):
    def __init__(self) -> None:
        super().__init__()
        self.servers["api"] = ClosingServer(lambda line: None)

    def get(self, addr: str) -> str:
        sock = connect(addr, timeout=2.0)
        try:
            sock.sendall(b"get\n")
            buf = b""
            while data := sock.recv(4096):  # the bug: waits for EOF, not for the newline
                buf += data
                if b"\n" in buf and self.whole_at is None:
                    self.whole_at = time.monotonic()
        except OSError as exc:
            raise Unavailable(str(exc)) from None
        finally:
            sock.close()
        return buf.decode().strip()

    def check(self, addrs: Mapping[str, str]) -> None:
        self.whole_at: float | None = None
        with contextlib.suppress(Unavailable):
            self.get(addrs["api"])
        # The answer was all there: a client framing by newline returns at once.
        if self.whole_at is not None and (idle := time.monotonic() - self.whole_at) > 0.3:
            raise Violation(f"the whole answer waited {idle:.2f} s for the connection to close")


test_chaos = chaos_test(System)
