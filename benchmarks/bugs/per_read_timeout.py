"""A per-read timeout taken for a deadline: a trickling download never trips the read
timeout, so a slow link makes the call arbitrarily long."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping

from benchmarks.bugs._kit import BaseSystem, LineServer, Unavailable, Violation, chaos_test, connect

DESCRIPTION = "per-read timeout as deadline: a slow link stretches a download past any deadline"
MINIMAL = [{"kind": "toxic", "target": "blobs", "type": "bandwidth", "attributes": {"rate": 32}}]
BLOB = "x" * 40_000


class System(BaseSystem):
    TARGETS = ("blobs",)

    def __init__(self) -> None:
        super().__init__()
        self.servers["blobs"] = LineServer(lambda line: BLOB)

    def download(self, addr: str) -> str:
        sock = connect(addr, timeout=0.4)  # the bug: 0.4 s per recv, no overall deadline
        try:
            sock.sendall(b"get\n")
            buf = b""
            while not buf.endswith(b"\n"):
                data = sock.recv(65536)
                if not data:
                    raise Unavailable("closed")
                buf += data
        except OSError as exc:
            raise Unavailable(str(exc)) from None
        finally:
            sock.close()
        return buf.decode()

    def check(self, addrs: Mapping[str, str]) -> None:
        started = time.monotonic()
        with contextlib.suppress(Unavailable):
            self.download(addrs["blobs"])
        spent = time.monotonic() - started
        if spent > 1.0:
            raise Violation(f"the download took {spent:.2f} s, the deadline is 0.8 s")


test_chaos = chaos_test(System)
