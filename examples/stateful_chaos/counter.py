"""A page-view counter service and the client a web app uses to bump it.

Protocol, one line each way over TCP: ``INCR\\n`` -> ``count 7\\n``; ``GET\\n`` ->
``count 7\\n``.

The client has a real bug: ``incr`` retries on a read timeout. The increment is not
idempotent, so when the *reply* is slow (the server already counted) the retry counts the
view twice. Single operations under a fault, or faults without operations, look fine; the
state machine finds "db slow, then incr" and shrinks to exactly that.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from types import TracebackType


class CounterUnavailable(Exception):
    """The counter could not answer: honest, and the caller can handle it."""


class CounterServer:
    def __init__(self) -> None:
        self.count = 0
        self._lock = threading.Lock()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self.address = f"127.0.0.1:{self._sock.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        buf = b""
        with conn, contextlib.suppress(OSError):
            while data := conn.recv(4096):
                buf += data
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    with self._lock:
                        if line.strip() == b"INCR":
                            self.count += 1
                        reply = b"count %d\n" % self.count
                    conn.sendall(reply)

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> CounterServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class CounterClient:
    def __init__(self, host: str, port: int, timeout: float = 0.2) -> None:
        self.address = (host, port)
        self.timeout = timeout

    def _call(self, line: bytes) -> int:
        try:
            with socket.create_connection(self.address, timeout=self.timeout) as sock:
                sock.sendall(line)
                buf = b""
                while b"\n" not in buf:
                    data = sock.recv(4096)
                    if not data:
                        raise CounterUnavailable("closed before the reply")
                    buf += data
        except OSError as exc:
            raise CounterUnavailable(str(exc)) from None
        return int(buf.split()[1])

    def incr(self) -> int:
        for _ in range(3):  # the bug: a non-idempotent call retried on timeout
            try:
                return self._call(b"INCR\n")
            except CounterUnavailable:
                continue
        raise CounterUnavailable("gave up after 3 attempts")

    def get(self) -> int:
        return self._call(b"GET\n")
