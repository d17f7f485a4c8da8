"""Local stand-ins the vault's Python examples run against (imported by each example's
``demo``): loopback HTTP and TCP servers whose misbehaviour is scripted per call.

Every server is a daemon thread on 127.0.0.1 with a free port, so examples are real
network code without any outside dependency.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

Reply = tuple[int, dict[str, str], bytes]
calls: Counter[str] = Counter()


def http_server(handler: Callable[[str, int, dict[str, str]], Reply | None]) -> str:
    """Serve ``handler(path, n, headers) -> (status, headers, body)`` where ``n`` counts the
    requests to that path (1-based). Returning None resets the connection instead."""
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            with lock:
                calls[self.path] += 1
                n = calls[self.path]
            reply = handler(self.path, n, dict(self.headers))
            if reply is None:
                reset(self.connection)
                self.close_connection = True
                return
            status, headers, body = reply
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PUT = _serve

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    ).start()
    return f"http://127.0.0.1:{server.server_address[1]}"


def tcp_server(handler: Callable[[socket.socket, int], None]) -> tuple[str, int]:
    """Accept connections forever; ``handler(conn, n)`` runs in a thread per connection
    (``n`` counts connections, 1-based) and the connection is closed after it."""
    listener = socket.create_server(("127.0.0.1", 0))
    counter = iter(range(1, 1 << 30))

    def serve(conn: socket.socket, n: int) -> None:
        with conn, contextlib.suppress(OSError):
            handler(conn, n)

    def accept() -> None:
        while True:
            conn, _ = listener.accept()
            threading.Thread(target=serve, args=(conn, next(counter)), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    return listener.getsockname()[:2]


def reset(conn: socket.socket) -> None:
    """Close with a TCP RST (SO_LINGER 0): the peer sees ConnectionResetError."""
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


def echo(conn: socket.socket, n: int) -> None:
    while data := conn.recv(65536):
        conn.sendall(data)


def blackhole(conn: socket.socket, n: int) -> None:
    """Accept, then never answer (a hung dependency)."""
    time.sleep(30)


def closed_port() -> int:
    """A loopback port with nothing listening (connections are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
