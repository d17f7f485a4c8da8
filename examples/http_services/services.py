"""Two HTTP services on loopback: ``inventory`` (the dependency) and ``shop`` (the service
under test), which calls inventory for every order page.

The shop's call to inventory is the resilience boundary: ``@antifragile("inventory")``
applies that module's genome (retry, circuit breaker, timeout, fallback, cache ...), and
the socket timeout comes from the genome's timeout gene.
"""

from __future__ import annotations

import http.client
import json
import logging
import sys
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from pytest_rafael import antifragile
from pytest_rafael.resilience import current_timeout

STOCK = {"sku-1": 12, "sku-2": 0, "sku-3": 5}


class _Handler(BaseHTTPRequestHandler):
    route: Callable[[str], tuple[int, dict[str, Any]]]

    def do_GET(self) -> None:
        status, body = type(self).route(self.path)
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
        pass


LOG = logging.getLogger("examples.http_services")

# A client that hangs up mid-request (a chaos reset, a timed-out caller): routine for a
# service, not a bug worth a traceback.
CLIENT_GONE = (ConnectionResetError, BrokenPipeError, ConnectionAbortedError, TimeoutError)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, CLIENT_GONE):
            # One line, as a real service logs it (pytest shows it with a failing test).
            LOG.info("client %s:%s went away: %s", *client_address[:2], type(error).__name__)
            return
        super().handle_error(request, client_address)  # anything else is a real bug


class Service:
    """A ThreadingHTTPServer on a free loopback port, served from a daemon thread."""

    def __init__(self, route: Callable[[str], tuple[int, dict[str, Any]]]) -> None:
        handler = type("Handler", (_Handler,), {"route": staticmethod(route)})
        self.server = _Server(("127.0.0.1", 0), handler)
        # shutdown() waits for the loop's next poll: 50 ms, not the default 0.5 s.
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def address(self) -> str:
        host, port = self.server.server_address[:2]
        return f"{host}:{port}"

    def __enter__(self) -> Service:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def inventory_route(path: str) -> tuple[int, dict[str, Any]]:
    sku = path.rsplit("/", 1)[-1]
    if sku not in STOCK:
        return 404, {"error": f"unknown sku {sku}"}
    return 200, {"sku": sku, "stock": STOCK[sku]}


def get_json(address: str, path: str, timeout: float) -> tuple[int, dict[str, Any]]:
    host, port = address.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.request("GET", path, headers={"Connection": "close"})
        response = conn.getresponse()
        return response.status, dict(json.loads(response.read()))
    finally:
        conn.close()


class InventoryClient:
    def __init__(self, address: str) -> None:
        self.address = address

    @antifragile("inventory")
    def stock(self, sku: str) -> int:
        status, body = get_json(self.address, f"/stock/{sku}", current_timeout() or 30.0)
        if status != 200:
            raise LookupError(body.get("error", f"inventory answered {status}"))
        return int(body["stock"])


def shop_route(inventory: InventoryClient) -> Callable[[str], tuple[int, dict[str, Any]]]:
    def route(path: str) -> tuple[int, dict[str, Any]]:
        sku = path.rsplit("/", 1)[-1]
        try:
            stock = inventory.stock(sku)
        except LookupError as exc:
            return 404, {"error": str(exc)}
        except Exception as exc:  # the dependency failed: the shop answers 503
            return 503, {"error": f"inventory unavailable: {type(exc).__name__}"}
        return 200, {"sku": sku, "available": stock > 0}

    return route
