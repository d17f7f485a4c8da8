"""The HTTP side: Toxiproxy 2.x routes, status codes and bodies on a stdlib server.

Each API connection gets a daemon thread (``ThreadingHTTPServer``); requests are short,
and all state changes go through :class:`ProxyCollection`'s lock. Nothing a client sends
can raise out of a handler: bad HTTP gets the stdlib's 400, bad JSON Toxiproxy's 400,
and an unexpected failure a 500 JSON error.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

from pytest_rafael.toxiproxy import errors
from pytest_rafael.toxiproxy.collection import ProxyCollection

VERSION = "2.12.0"
_MAX_BODY = 16 * 1024 * 1024
_IDLE_TIMEOUT = 60.0
_MAX_LINE = 65537


def _reject_constant(name: str) -> Any:
    # NaN and Infinity are not JSON; Python's decoder accepts them, Go's does not.
    raise ValueError(f"invalid character {name[0]!r} looking for beginning of value")


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)

Handler = Callable[["ApiHandler", list[str]], None]


class ApiHttpServer(ThreadingHTTPServer):
    """Tracks live API connections so that ``close_all`` can end keep-alive ones."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], collection: ProxyCollection) -> None:
        self.collection = collection
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, ApiHandler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def close_all(self) -> None:
        with self._open_lock:
            requests = list(self._open)
        for request in requests:
            with contextlib.suppress(OSError):
                request.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a broken client connection is not the server's problem; keep serving


class ApiHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are separate writes: no 40 ms stalls
    server_version = "rafael-toxiproxy"
    sys_version = ""
    timeout = _IDLE_TIMEOUT
    server: ApiHttpServer
    _body: bytes | None = None
    _status = 200

    def send_response(self, code: int, message: str | None = None) -> None:
        self._status = code
        super().send_response(code, message)

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: the server lives inside the test process

    # -- plumbing ------------------------------------------------------------------------

    def _send(self, status: int, body: bytes, content_type: str | None) -> None:
        self.send_response(status)
        self._finish(body, content_type)

    def _finish(self, body: bytes, content_type: str | None) -> None:
        status = self._status
        # Toxiproxy tags every response with a request id (its access log's key).
        self.send_header("X-Toxiproxy-Request-Id", uuid.uuid4().hex[:20])
        if content_type is not None:
            self.send_header("Content-Type", content_type)
        if status != 204:  # a 204 carries no body and, per RFC 9110, no Content-Length
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def _json(self, status: int, value: Any) -> None:
        self._send(status, json.dumps(value, allow_nan=False).encode(), "application/json")

    def _error(self, error: errors.ApiError, extra: dict[str, Any] | None = None) -> None:
        # Toxiproxy writes its JSON error through http.Error: text/plain and a newline.
        payload = {**error.to_json(), **(extra or {})}
        body = (json.dumps(payload) + "\n").encode()
        self.send_response(error.status)
        self.send_header("X-Content-Type-Options", "nosniff")  # as http.Error sets it
        self._finish(body, "text/plain; charset=utf-8")

    def _read_body(self) -> bytes:
        if self._body is None:
            self._body = self._read_raw_body()
        return self._body

    def _read_raw_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts: list[bytes] = []
            total = 0
            while True:
                line = self.rfile.readline(_MAX_LINE).split(b";")[0].strip()
                try:
                    # Hex digits only: int() would also take "-1", "+1" and "0x1".
                    if line.strip(b"0123456789abcdefABCDEF") or len(line) > 16:
                        raise ValueError(line)
                    size = int(line or b"0", 16)
                except ValueError:
                    raise errors.BAD_REQUEST_BODY.joined("invalid chunk size") from None
                if size == 0:
                    while self.rfile.readline(_MAX_LINE) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                total += size
                if total > _MAX_BODY:
                    raise errors.BAD_REQUEST_BODY.joined("request body too large")
                parts.append(self.rfile.read(size))
                self.rfile.readline(_MAX_LINE)
        length_text = self.headers.get("Content-Length", "0") or "0"
        try:
            length = int(length_text)
        except ValueError:
            raise errors.BAD_REQUEST_BODY.joined("invalid Content-Length") from None
        if length < 0 or length > _MAX_BODY:
            raise errors.BAD_REQUEST_BODY.joined("invalid Content-Length")
        return self.rfile.read(length) if length else b""

    def _json_body(self) -> Any:
        raw = self._read_body()
        if not raw.strip():
            raise errors.BAD_REQUEST_BODY.joined("EOF")
        try:
            # Go's decoder reads the first JSON value and ignores what follows it.
            value, _ = _DECODER.raw_decode(raw.decode("utf-8").lstrip())
        except (UnicodeDecodeError, ValueError) as exc:
            raise errors.BAD_REQUEST_BODY.joined(str(exc).splitlines()[0]) from None
        return value

    # -- dispatch ------------------------------------------------------------------------

    def _dispatch(self) -> None:
        self._body = None
        try:
            try:
                # Read the body first, whatever the route: an unread body would be taken
                # for the next request on this keep-alive connection.
                self._read_body()
            except errors.ApiError:
                self.close_connection = True
                raise
            if self.headers.get("User-Agent", "").startswith("Mozilla/"):
                # Toxiproxy refuses browsers (a guard against CSRF from web pages).
                self._send(403, b"User agent not allowed\n", "text/plain; charset=utf-8")
                return
            path = urlsplit(self.path).path
            parts = [unquote(p) for p in path.split("/")[1:]]
            route = _route(parts)
            if route is None:
                self._send(404, b"404 page not found\n", "text/plain; charset=utf-8")
                return
            handlers, args = route
            handler = handlers.get(self.command)
            if handler is None:
                self._send(405, b"", None)
                return
            handler(self, args)
        except errors.ApiError as exc:
            self._error(exc)
        except (ConnectionError, TimeoutError):
            self.close_connection = True
        except Exception as exc:  # never let a request take the server down
            self.close_connection = True
            with contextlib.suppress(OSError):
                self._error(errors.ApiError(f"internal error: {exc}", 500))

    do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = do_HEAD = do_OPTIONS = _dispatch

    # -- endpoints -----------------------------------------------------------------------

    def proxy_index(self, _: list[str]) -> None:
        self._json(200, self.server.collection.all())

    def proxy_create(self, _: list[str]) -> None:
        self._json(201, self.server.collection.create(self._json_body()))

    def populate(self, _: list[str]) -> None:
        collection = self.server.collection
        try:
            proxies = collection.populate(self._json_body())
        except errors.ApiError as exc:
            self._error(exc, {"proxies": None})
            return
        self._json(201, {"proxies": proxies or None})

    def proxy_show(self, args: list[str]) -> None:
        self._json(200, self.server.collection.show(args[0]))

    def proxy_update(self, args: list[str]) -> None:
        collection = self.server.collection
        collection.show(args[0])  # 404 before a body error, as Toxiproxy checks
        self._json(200, collection.update(args[0], self._json_body()))

    def proxy_delete(self, args: list[str]) -> None:
        self.server.collection.delete(args[0])
        self._send(204, b"", None)

    def toxic_index(self, args: list[str]) -> None:
        self._json(200, self.server.collection.toxics(args[0]))

    def toxic_create(self, args: list[str]) -> None:
        collection = self.server.collection
        collection.show(args[0])
        self._json(200, collection.add_toxic(args[0], self._json_body()))

    def toxic_show(self, args: list[str]) -> None:
        self._json(200, self.server.collection.toxic(args[0], args[1]))

    def toxic_update(self, args: list[str]) -> None:
        collection = self.server.collection
        collection.toxic(args[0], args[1])
        self._json(200, collection.update_toxic(args[0], args[1], self._json_body()))

    def toxic_delete(self, args: list[str]) -> None:
        self.server.collection.remove_toxic(args[0], args[1])
        self._send(204, b"", None)

    def reset(self, _: list[str]) -> None:
        self.server.collection.reset()
        self._send(204, b"", None)

    def version(self, _: list[str]) -> None:
        body = json.dumps({"version": VERSION}) + "\n"
        self._send(200, body.encode(), "application/json;charset=utf-8")

    def metrics(self, _: list[str]) -> None:
        body = self.server.collection.metrics().encode()
        self._send(200, body, "text/plain; version=0.0.4; charset=utf-8")


_Routes = dict[str, Handler]

_PROXIES: _Routes = {"GET": ApiHandler.proxy_index, "POST": ApiHandler.proxy_create}
_PROXY: _Routes = {
    "GET": ApiHandler.proxy_show,
    "POST": ApiHandler.proxy_update,
    "PATCH": ApiHandler.proxy_update,
    "DELETE": ApiHandler.proxy_delete,
}
_TOXICS: _Routes = {"GET": ApiHandler.toxic_index, "POST": ApiHandler.toxic_create}
_TOXIC: _Routes = {
    "GET": ApiHandler.toxic_show,
    "POST": ApiHandler.toxic_update,
    "PATCH": ApiHandler.toxic_update,
    "DELETE": ApiHandler.toxic_delete,
}
_FIXED: dict[str, _Routes] = {
    "populate": {"POST": ApiHandler.populate},
    "reset": {"POST": ApiHandler.reset},
    "version": {"GET": ApiHandler.version},
    "metrics": {"GET": ApiHandler.metrics},
}


def _route(parts: list[str]) -> tuple[_Routes, list[str]] | None:
    if len(parts) == 1 and parts[0] in _FIXED:
        return _FIXED[parts[0]], []
    if not parts or parts[0] != "proxies" or any(p == "" for p in parts[1:]):
        return None
    if len(parts) == 1:
        return _PROXIES, []
    if len(parts) == 2:
        return _PROXY, [parts[1]]
    if len(parts) == 3 and parts[2] == "toxics":
        return _TOXICS, [parts[1]]
    if len(parts) == 4 and parts[2] == "toxics":
        return _TOXIC, [parts[1], parts[3]]
    return None
