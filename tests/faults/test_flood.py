"""The flood sends real requests from a child process to a real HTTP server, reports what
it achieved, refuses anything but loopback, and is gone once stopped."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import psutil
import pytest

from pytest_rafael.faults.flood import FloodError, parse_address, request_bytes, start_flood


class _Counting(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
    hits = 0
    clients: set[str] = set()


@pytest.fixture
def server() -> Iterator[_Counting]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            srv = self.server
            assert isinstance(srv, _Counting)
            srv.hits += 1
            srv.clients.add(self.headers.get("X-Client", "?"))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    srv = _Counting(("127.0.0.1", 0), Handler)
    srv.clients = set()
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield srv
    srv.shutdown()
    srv.server_close()


def test_a_flood_reaches_a_real_server_and_reports_what_it_achieved(server: _Counting) -> None:
    port = server.server_address[1]
    flood = start_flood(
        parse_address(f"http://127.0.0.1:{port}/items"),
        {"rate": 200, "concurrency": 4, "payload": "GET /items HTTP/1.1\nX-Client: flood"},
        target="api",
    )
    pid = flood.pid
    deadline = time.monotonic() + 30
    while server.hits < 20 and time.monotonic() < deadline:
        time.sleep(0.05)
    observed = flood.stop()
    assert server.hits >= 20, observed
    assert server.clients == {"flood"}
    assert 0 < observed["completed"] <= server.hits
    assert observed["errors"] == 0
    assert observed["statuses"] == {"200": observed["completed"]}
    assert 0 < observed["achieved_rps"] <= observed["requested_rps"]
    latency = observed["latency_ms"]
    assert 0 < latency["p50"] <= latency["p90"] <= latency["p99"] <= latency["max"]
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert flood.stop() == observed  # idempotent


def test_errors_are_counted_when_nothing_listens() -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: connections are refused
        flood = start_flood(parse_address(f"127.0.0.1:{port}"), {"rate": 100}, target="x")
        deadline = time.monotonic() + 30
        observed: dict[str, Any] = {}
        while time.monotonic() < deadline:
            time.sleep(0.2)
            if flood.running:
                observed = flood.stop()
                break
    assert observed["completed"] == 0
    assert observed["errors"] > 0
    assert set(observed["error_kinds"]) <= {"refused", "reset"}


@pytest.mark.parametrize(
    ("target", "problem"),
    [
        ("http://10.0.0.1:80/", "only loopback"),
        ("http://example.com/", "only loopback"),
        ("ftp://127.0.0.1:21", "expected http:// or tcp://"),
        ("127.0.0.1", "expected host:port"),
    ],
)
def test_only_loopback_addresses_may_be_flooded(target: str, problem: str) -> None:
    with pytest.raises(FloodError, match=problem) as info:
        parse_address(target)
    assert "\n" not in str(info.value)


def test_http_payloads_get_their_headers() -> None:
    address = parse_address("http://localhost:8080/x?q=1")
    data, http = request_bytes(None, address, keep_alive=False)
    assert http
    assert data == (b"GET /x?q=1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nConnection: close\r\n\r\n")
    raw, http = request_bytes("PING\r\n", address, keep_alive=True)
    assert (raw, http) == (b"PING\r\n", False)
