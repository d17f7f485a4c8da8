"""A length-prefixed body read with a single ``recv``: the blob store reads the
``PUT <name> <size>`` header, then takes whatever one ``recv`` returns as the rest of the
body, as if TCP delivered it in one piece. When the upload arrives in pieces, it stores a
truncated blob and acknowledges it."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Mapping

from benchmarks.bugs._kit import BaseSystem, LineServer, Unavailable, Violation, chaos_test, connect

DESCRIPTION = "server reads a length-prefixed body with one recv: stores a truncated upload"
MINIMAL = [
    {
        "kind": "toxic",
        "target": "blobs",
        "type": "slicer",
        "stream": "upstream",
        "attributes": {"average_size": 400, "size_variation": 0, "delay": 20000},
    }
]

PAYLOAD = bytes(range(33, 123)) * 22  # 1980 bytes


class BlobServer(LineServer):
    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}
        super().__init__(lambda line: None)

    def _handle(self, conn: socket.socket) -> None:
        buf = b""
        with conn, contextlib.suppress(OSError, ValueError):
            while b"\n" not in buf:
                data = conn.recv(65536)
                if not data:
                    return
                buf += data
            header, body = buf.split(b"\n", 1)
            _, name, size = header.decode().split()
            if len(body) < int(size):
                body += conn.recv(int(size) - len(body))  # the bug: recv until size bytes
            with self.lock:
                self.blobs[name] = body[: int(size)]
            conn.sendall(f"STORED {name}\n".encode())


class System(BaseSystem):
    TARGETS = ("blobs",)

    def __init__(self) -> None:
        super().__init__()
        self.store = BlobServer()
        self.servers["blobs"] = self.store

    def reset(self) -> None:
        super().reset()
        with self.store.lock:
            self.store.blobs = {}

    def put(self, addr: str, name: str, payload: bytes) -> None:
        end = time.monotonic() + 1.0
        sock = connect(addr, 1.0)
        buf = b""
        try:
            sock.sendall(f"PUT {name} {len(payload)}\n".encode() + payload)
            while b"\n" not in buf:
                sock.settimeout(max(end - time.monotonic(), 0.001))
                data = sock.recv(4096)
                if not data:
                    raise Unavailable("connection closed before the reply")
                buf += data
        except OSError as exc:
            raise Unavailable(f"put: {exc!r}") from None
        finally:
            sock.close()

    def check(self, addrs: Mapping[str, str]) -> None:
        with contextlib.suppress(Unavailable):
            self.put(addrs["blobs"], "report.bin", PAYLOAD)
        time.sleep(0.05)  # let the store finish a write the client gave up on
        with self.store.lock:
            stored = self.store.blobs.get("report.bin")
        if stored is not None and stored != PAYLOAD:
            raise Violation(f"stored {len(stored)} of the {len(PAYLOAD)} bytes uploaded")


test_chaos = chaos_test(System)
