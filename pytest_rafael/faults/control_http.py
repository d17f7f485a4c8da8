"""A keep-alive HTTP/1.1 client with a deadline per request, for the plugin's own
Toxiproxy control calls.

toxiproxy-python opens a new ``requests`` session and TCP connection for every call;
five of those per chaos iteration made up most of an iteration's cost. This client keeps
one connection open (Toxiproxy, embedded or real, answers with keep-alive) and bounds
every request, connect included, by one deadline: each socket wait gets only the time
that is left, so a server that hangs or trickles its answer cannot hold up the run.
"""

from __future__ import annotations

import http.client
import io
import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pytest_rafael.errors import RafaelError


class DeadlineExceeded(RafaelError, TimeoutError):
    """The request did not complete within its deadline."""


@dataclass(frozen=True)
class Reply:
    """One HTTP answer: status and body."""

    status: int
    body: bytes

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def json(self) -> Any:
        return json.loads(self.body)

    def error_text(self) -> str:
        """Toxiproxy's ``{"error": ...}`` message, or the body's first line."""
        try:
            decoded = json.loads(self.body)
        except ValueError:
            decoded = None
        if isinstance(decoded, dict) and isinstance(decoded.get("error"), str):
            return str(decoded["error"])
        lines = self.body.decode(errors="replace").strip().splitlines()
        return lines[0][:200] if lines else "(empty body)"


class _DeadlineRaw(io.RawIOBase):
    """Reads from a socket, each wait bounded by the time left before the deadline."""

    def __init__(self, sock: socket.socket, deadline: Callable[[], float]) -> None:
        super().__init__()
        self._sock = sock
        self._deadline = deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        _set_remaining(self._sock, self._deadline())
        return self._sock.recv_into(buffer)


class _Connection(http.client.HTTPConnection):
    """An HTTPConnection whose responses read under the current request's deadline."""

    def __init__(self, host: str, port: int) -> None:
        super().__init__(host, port)
        self.deadline = 0.0
        connection = self

        class _Response(http.client.HTTPResponse):
            def __init__(self, sock: socket.socket, *args: Any, **kwargs: Any) -> None:
                super().__init__(sock, *args, **kwargs)
                self.fp = io.BufferedReader(_DeadlineRaw(sock, lambda: connection.deadline))

        self.response_class = _Response

    def connect(self) -> None:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise DeadlineExceeded("no time left to connect")
        self.sock = socket.create_connection((self.host, self.port), timeout=remaining)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _set_remaining(sock: socket.socket | None, deadline: float) -> None:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise DeadlineExceeded("deadline passed")
    if sock is not None:
        sock.settimeout(remaining)


# A reused connection that the server closed while idle fails like this before any
# answer arrived, so sending the request again on a fresh connection is safe.
_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)


class KeepAliveClient:
    """One persistent connection to ``host:port``; thread-safe (calls take turns)."""

    def __init__(self, host: str, port: int, timeout: float) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self._lock = threading.Lock()
        self._conn: _Connection | None = None

    def request(self, method: str, path: str, body: object = None) -> Reply:
        """Send one request; raise DeadlineExceeded after ``timeout`` seconds, OSError or
        http.client.HTTPException when the connection fails."""
        deadline = time.monotonic() + self.timeout
        if not self._lock.acquire(timeout=self.timeout):
            raise DeadlineExceeded("an earlier control call still holds the connection")
        try:
            return self._request(method, path, body, deadline)
        finally:
            self._lock.release()

    def _request(self, method: str, path: str, body: object, deadline: float) -> Reply:
        payload = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if payload is not None else {}
        while True:
            reused = self._conn is not None
            conn = self._conn or _Connection(self.host, self.port)
            self._conn = conn
            conn.deadline = deadline
            try:
                if conn.sock is not None:
                    _set_remaining(conn.sock, deadline)
                conn.request(method, path, body=payload, headers=headers)
                response = conn.getresponse()
                data = response.read()
            except _STALE:
                self.close()
                if reused:
                    continue  # once: the next round uses a fresh connection
                raise
            except TimeoutError:
                self.close()
                raise DeadlineExceeded("deadline passed") from None
            except BaseException:
                self.close()  # half a request or answer: the connection is unusable
                raise
            if response.will_close:
                self.close()
            return Reply(response.status, data)

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
