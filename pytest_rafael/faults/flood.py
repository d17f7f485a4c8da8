"""Request floods: real concurrent load against a loopback address from a child process.

A ``kind: flood`` fault starts one child (``_flood_child.py``) that sends requests at the
fault's ``rate`` with ``concurrency`` workers while the fault is active. The child runs in
its own process group, as stressors do, so the load does not take the test's GIL and is
killed as a whole; it dies with the test process and stops by itself after ``max_s``.
Stopping it returns what was achieved (rate, errors, latency percentiles): the iteration
records that as the fault's ``observed`` evidence.

Only loopback targets are accepted (``127.0.0.0/8``, ``::1``, ``localhost``): a chaos run
must never flood another machine.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pytest_rafael.errors import RafaelError
from pytest_rafael.faults import stress_process

__all__ = [
    "DEFAULTS",
    "MAX_CONCURRENCY",
    "MAX_PAYLOAD_BYTES",
    "MAX_RATE",
    "FloodAddress",
    "FloodError",
    "FloodRun",
    "parse_address",
    "request_bytes",
    "start_flood",
]

MAX_RATE = 50_000.0  # requests per second; far above what one child can send
MAX_CONCURRENCY = 1024  # connections; stays under the usual 1024 open files with room
MAX_PAYLOAD_BYTES = 65_536
DEFAULTS: Mapping[str, Any] = {"concurrency": 16, "connection": "keep-alive", "timeout": 2.0}
_START_TIMEOUT_S = 30.0
_STOP_GRACE_S = 3.0
_HTTP_LINE = re.compile(r"[A-Z]+ (/\S*|\S+ HTTP/1\.[01])( HTTP/1\.[01])?")
_CHILD_SCRIPT = Path(__file__).with_name("_flood_child.py")


class FloodError(RafaelError):
    """A flood was refused or could not start. ``str()`` is one line."""


@dataclass(frozen=True)
class FloodAddress:
    """Where a flood goes: a loopback host and port, and the path of an HTTP URL."""

    host: str
    port: int
    path: str = "/"


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_address(target: str) -> FloodAddress:
    """``http://127.0.0.1:8080/path``, ``tcp://[::1]:6379`` or ``127.0.0.1:8080``; raises
    :class:`FloodError` for anything that is not a loopback address with a port."""
    text = target if "://" in target else f"tcp://{target}"
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise FloodError(f"flood target {target!r}: {exc}") from None
    if parts.scheme not in ("http", "tcp"):
        raise FloodError(f"flood target {target!r}: expected http:// or tcp://")
    host = parts.hostname or ""
    if port is None:
        port = 80 if parts.scheme == "http" else None
    if not host or port is None:
        raise FloodError(f"flood target {target!r}: expected host:port")
    if not _loopback(host):
        raise FloodError(
            f"flood target {target!r}: only loopback addresses (127.0.0.1, ::1, localhost) "
            "may be flooded"
        )
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return FloodAddress("127.0.0.1" if host == "localhost" else host, port, path)


def request_bytes(
    payload: str | None, address: FloodAddress, keep_alive: bool
) -> tuple[bytes, bool]:
    """The bytes of one request and whether replies are parsed as HTTP.

    No payload: ``GET <path>``. A payload whose first line is an HTTP request line gets
    CRLF line ends, a ``Host`` and a ``Connection`` header when it has none, and the blank
    line that ends the headers. Anything else is sent as it is (latin-1 code points, so
    YAML escapes like ``"\\x00"`` give those bytes; other characters as UTF-8).
    """
    if payload is None:
        payload = f"GET {address.path} HTTP/1.1"
    first = payload.split("\n", 1)[0].rstrip("\r")
    if not _HTTP_LINE.fullmatch(first):
        return _encode(payload), False
    head, _, body = payload.replace("\r\n", "\n").partition("\n\n")
    lines = [line for line in head.split("\n") if line]
    if " HTTP/1." not in lines[0]:
        lines[0] += " HTTP/1.1"
    names = {line.split(":", 1)[0].strip().lower() for line in lines[1:]}
    if "host" not in names:
        lines.append(f"Host: {address.host}:{address.port}")
    if "connection" not in names:
        lines.append(f"Connection: {'keep-alive' if keep_alive else 'close'}")
    if body and "content-length" not in names:
        lines.append(f"Content-Length: {len(_encode(body))}")
    return _encode("\r\n".join(lines) + "\r\n\r\n" + body), True


def _encode(text: str) -> bytes:
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return text.encode("utf-8")


class FloodRun:
    """A running flood; :meth:`stop` ends it and returns what it achieved."""

    def __init__(self, child: _FloodChild, target: str, spec: Mapping[str, Any]) -> None:
        self._child = child
        self.target = target
        self.spec = dict(spec)
        self._observed: dict[str, Any] | None = None

    @property
    def pid(self) -> int:
        return self._child.popen.pid

    @property
    def running(self) -> bool:
        return not self._child.exited()

    def stop(self) -> dict[str, Any]:
        """SIGTERM, wait for the summary, SIGKILL the group if it does not come: always
        returns, and the child is gone afterwards. Idempotent."""
        if self._observed is None:
            self._child.terminate(_STOP_GRACE_S)
            self._observed = _summary(self._child.raw_stdout, self._child.stderr)
            self._observed["target"] = self.target
        return dict(self._observed)

    revert = stop


class _FloodChild(stress_process._Child):
    """Keeps the child's stdout whole: its summary is JSON, not stressor lines."""

    raw_stdout = ""

    def _collect_output(self) -> None:
        if self.popen.stdout is not None:
            self.raw_stdout = self.popen.stdout.read().decode(errors="replace")
            self.popen.stdout.close()
        if self.popen.stderr is not None:
            self.stderr = self.popen.stderr.read().decode(errors="replace")
            self.popen.stderr.close()


def _summary(stdout: str, stderr: str) -> dict[str, Any]:
    for line in stdout.splitlines():
        if line.startswith("final "):
            result: dict[str, Any] = json.loads(line[6:])
            return result
    err = stderr.strip().splitlines()
    # No summary: the child was killed (stuck) or crashed; say so rather than invent one.
    return {"error": err[-1] if err else "the flood stopped without a summary"}


def start_flood(
    address: FloodAddress,
    attributes: Mapping[str, Any],
    *,
    target: str,
    max_s: float = 3600.0,
) -> FloodRun:
    """Start a flood and return once its workers run. ``attributes``: ``rate`` (required),
    ``concurrency``, ``payload``, ``connection`` (``keep-alive`` | ``new``), ``timeout``
    (seconds per request). Raises :class:`FloodError` (one line)."""
    if os.name != "posix":
        raise FloodError("flood: needs a POSIX system (process groups)")
    if not _loopback(address.host):
        raise FloodError(f"flood target {address.host!r}: only loopback addresses may be flooded")
    attrs = {**DEFAULTS, **attributes}
    rate = float(attrs["rate"])
    concurrency = int(attrs["concurrency"])
    if not 0 < rate <= MAX_RATE or not 1 <= concurrency <= MAX_CONCURRENCY:
        raise FloodError(
            f"flood: rate must be in (0, {MAX_RATE:g}] and concurrency in 1..{MAX_CONCURRENCY}"
        )
    keep_alive = attrs["connection"] != "new"
    payload, http = request_bytes(attrs.get("payload"), address, keep_alive)
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise FloodError(f"flood: payload over {MAX_PAYLOAD_BYTES} bytes")
    spec = {
        "host": address.host,
        "port": address.port,
        "payload": payload.decode("latin-1"),
        "http": http,
        "rate": rate,
        "concurrency": concurrency,
        "new_connection": not keep_alive,
        "timeout_s": float(attrs["timeout"]),
        "max_s": max_s,
        "ppid": os.getpid(),
    }
    script = (
        [str(_CHILD_SCRIPT)]
        if _CHILD_SCRIPT.is_file()
        else ["-m", "pytest_rafael.faults._flood_child"]
    )
    try:
        popen = stress_process._spawn([sys.executable, "-S", *script, json.dumps(spec)])
    except OSError as exc:
        raise FloodError(f"flood: cannot start the child process: {exc}") from None
    child = _FloodChild(popen, None)
    try:
        _await_ready(child, _START_TIMEOUT_S)
    except BaseException:
        child.terminate(0.0)
        raise
    shown = {k: v for k, v in spec.items() if k not in ("payload", "ppid", "max_s")}
    return FloodRun(child, target, shown)


def _await_ready(child: _FloodChild, timeout_s: float) -> None:
    try:
        line = stress_process.first_line(child, timeout_s)
    except stress_process.NotStarted as exc:
        if exc.exit_code is None:
            raise FloodError(f"flood: the child did not start within {timeout_s:g} s") from None
        raise FloodError(
            f"flood: the child exited with code {exc.exit_code} before it started: {exc.last_error}"
        ) from None
    if line != b"ready":
        raise FloodError(f"flood: unexpected output from the child: {line[:80]!r}")
