"""A missing timeout: the blob client connects with a timeout but then clears it for the
upload ("big files take long"), so a throttled link blocks the caller indefinitely."""

from __future__ import annotations

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

DESCRIPTION = "missing timeout: a 256 KB upload and its reply wait with no timeout at all"
MINIMAL = [
    {
        "kind": "toxic",
        "target": "blobs",
        "type": "bandwidth",
        "stream": "upstream",
        "attributes": {"rate": 32},
    }
]

PAYLOAD = "x" * (256 * 1024)


class System(BaseSystem):
    TARGETS = ("blobs",)

    def __init__(self) -> None:
        super().__init__()
        self.servers["blobs"] = LineServer(self._handle)

    @staticmethod
    def _handle(line: str) -> str:
        verb, _, rest = line.partition(" ")
        name, _, data = rest.partition(" ")
        return f"STORED {name} {len(data)}" if verb == "PUT" else "ERR bad request"

    def upload(self, addr: str, name: str, data: str) -> str:
        sock = connect(addr, timeout=0.5)
        try:
            sock.settimeout(None)  # the bug: no bound on the transfer or the reply
            try:
                sock.sendall(f"PUT {name} {data}\n".encode())
            except OSError as exc:
                raise Unavailable(f"send: {exc!r}") from None
            reply = read_line(sock)
        finally:
            sock.close()
        if reply != f"STORED {name} {len(data)}":
            raise Unavailable(f"unexpected reply {reply[:40]!r}")
        return reply

    def check(self, addrs: Mapping[str, str]) -> None:
        # A hang is reported by the driver; a correct upload would time out (Unavailable).
        reply = self.upload(addrs["blobs"], "report.pdf", PAYLOAD)
        if not reply.startswith("STORED"):
            raise Violation(f"upload acknowledged as {reply!r}")


test_chaos = chaos_test(System)
