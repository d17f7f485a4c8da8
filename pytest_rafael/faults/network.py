"""The client side of network faults: proxies and toxics on the Toxiproxy server in use.

The plugin drives an external Toxiproxy through its own keep-alive client
(``control_http.py``): one persistent connection, a deadline on every call (a hung
control port must not hang the test run, nor keep a fault from being reverted), and one
request per operation. The embedded server, which runs in this process, is driven by
direct calls with the same answers (``control_local.py``). toxiproxy-python stays the
client users get (``toxiproxy.client``), pointed at the same server; it is built only
when asked for, since it opens a new connection per call and ``Toxiproxy.create`` adds a
``GET /proxies``.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote, urlsplit

from pytest_rafael.errors import RafaelError
from pytest_rafael.faults.control_http import DeadlineExceeded, KeepAliveClient, Reply

if TYPE_CHECKING:
    from pytest_rafael.toxiproxy import EmbeddedServer


class ToxiproxyError(RafaelError):
    """A Toxiproxy control call failed or timed out; the message is one line."""


@dataclass(frozen=True)
class ProxyHandle:
    """A proxy the code under test connects through (returned by ``chaos_proxy``)."""

    name: str  # the name scenarios target (``target: db``)
    server_name: str  # the name on the Toxiproxy server (unique per test and worker)
    upstream: str
    host: str
    port: int

    @property
    def listen(self) -> str:
        return f"{self.host}:{self.port}"


def _path(*names: str) -> str:
    return "/proxies/" + "/toxics/".join(quote(name, safe="") for name in names)


class _Transport(Protocol):
    def request(self, method: str, path: str, body: object = None) -> Reply: ...

    def close(self) -> None: ...


class ToxiproxyControl:
    """Bounded control of one Toxiproxy server (embedded or external).

    ``local`` is the embedded server when it runs in this process: calls then go straight
    to it (``control_local.py``) instead of over HTTP."""

    def __init__(
        self,
        url: str,
        timeout: float = 5.0,
        *,
        local: EmbeddedServer | None = None,
        ports: tuple[int, int] | None = None,
        connect_host: str | None = None,
        ports_source: str = "--rafael-toxiproxy-ports",
    ) -> None:
        parts = urlsplit(url)
        self.url = url
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 8474
        self.timeout = timeout
        # Where the code under test reaches the proxies: the Toxiproxy host (a service
        # name in a container job) unless told otherwise (a mapped port on the runner).
        self.connect_host = connect_host or self.host
        self.ports = ports
        self.ports_source = ports_source
        # Proxies on a server reached at another address (a service container, or the
        # server bound to all interfaces) listen on every interface: its loopback is not
        # where the tests are. A port range is what a service maps, so the same.
        on_loopback = self.connect_host in _LOOPBACK_NAMES and ports is None
        self.listen_host = "127.0.0.1" if on_loopback else "0.0.0.0"
        self._taken: set[int] = set()
        self._held: set[str] = set()  # proxies this control created and has not deleted
        self._http: _Transport
        if local is not None:
            from pytest_rafael.faults.control_local import LocalTransport

            self._http = LocalTransport(local)
        else:
            self._http = KeepAliveClient(self.host, self.port, timeout)
        self._client: Any = None

    @property
    def client(self) -> Any:
        """A toxiproxy-python ``Toxiproxy`` client pointed at this server (for users)."""
        if self._client is None:
            from toxiproxy import Toxiproxy

            self._client = Toxiproxy()
        # toxiproxy-python keeps the address at class level, process-wide: another control
        # in this process (an in-process pytester run, say) may have re-pointed it since.
        self._client.update_api_consumer(self.host, self.port)
        return self._client

    def _call(self, what: str, method: str, path: str, body: object = None) -> Reply:
        """One control request; any failure becomes a one-line ToxiproxyError."""
        try:
            reply = self._http.request(method, path, body)
        except DeadlineExceeded:
            raise ToxiproxyError(
                f"Toxiproxy at {self.url} did not answer {what} within {self.timeout:g} s"
            ) from None
        except (OSError, http.client.HTTPException) as exc:
            lines = str(exc).strip().splitlines() or [type(exc).__name__]
            raise ToxiproxyError(
                f"Toxiproxy at {self.url}: {what} failed: {type(exc).__name__}: {lines[0][:200]}"
            ) from None
        if not reply.ok:
            raise ToxiproxyError(
                f"Toxiproxy at {self.url}: {what} failed: HTTP {reply.status}: {reply.error_text()}"
            )
        return reply

    def _json(self, what: str, method: str, path: str, body: object = None) -> Any:
        """A control request whose answer must be Toxiproxy's JSON: anything else (a web
        page from the wrong port, say) is a one-line ToxiproxyError, not a traceback."""
        reply = self._call(what, method, path, body)
        try:
            return reply.json()
        except ValueError:
            raise ToxiproxyError(
                f"Toxiproxy at {self.url}: {what}: the answer is not Toxiproxy's JSON "
                f"(HTTP {reply.status}, {len(reply.body)} bytes): is this a Toxiproxy server?"
            ) from None

    def close(self) -> None:
        """Close the kept-alive control connection (a later call opens a new one)."""
        self._http.close()

    def version(self) -> str:
        """The server's version text; raises ToxiproxyError when it does not answer."""
        return self._call("GET /version", "GET", "/version").body.decode(errors="replace")

    def create_proxy(
        self, name: str, upstream: str, *, unique_suffix: str = "", server_name: str | None = None
    ) -> ProxyHandle:
        server_name = server_name or f"{name}-{unique_suffix or uuid.uuid4().hex[:8]}"
        if self.ports is None:
            port = self._create(server_name, upstream, f"{self.listen_host}:0")
        else:
            port = self._create_in_range(server_name, upstream)
        self._taken.add(port)
        self._held.add(server_name)
        host = self.connect_host if self.listen_host == "0.0.0.0" else self.listen_host
        return ProxyHandle(name, server_name, upstream, host, port)

    def _create(self, server_name: str, upstream: str, listen: str) -> int:
        """Create one proxy listening on ``listen``; the port it got."""
        reply = self._call(
            f"create proxy {server_name}",
            "POST",
            "/proxies",
            {"name": server_name, "upstream": upstream, "listen": listen, "enabled": True},
        )
        try:
            return int(str(reply.json()["listen"]).rpartition(":")[2])
        except (ValueError, KeyError, TypeError):
            raise ToxiproxyError(
                f"Toxiproxy at {self.url}: create proxy {server_name}: the answer names no "
                f"listen address"
            ) from None

    def _create_in_range(self, server_name: str, upstream: str) -> int:
        """The first port of the range that is free on the server (other workers and runs
        may hold some: the server refuses those, and the next one is tried)."""
        assert self.ports is not None
        first, last = self.ports
        for port in range(first, last + 1):
            if port in self._taken:
                continue
            try:
                return self._create(server_name, upstream, f"{self.listen_host}:{port}")
            except ToxiproxyError as exc:
                if "in use" not in str(exc).lower():
                    raise
                self._taken.add(port)
        raise ToxiproxyError(
            f"{self.ports_source} {first}-{last}: no free port left for proxy "
            f"{server_name} (all {last - first + 1} are taken; this run holds "
            f"{len(self._held)}); widen the range"
        )

    def delete_proxy(self, handle: ProxyHandle) -> None:
        self._call(f"delete proxy {handle.server_name}", "DELETE", _path(handle.server_name))
        self._taken.discard(handle.port)
        self._held.discard(handle.server_name)

    def proxy_names(self) -> list[str]:
        """The names of every proxy on the server."""
        names = self._json("GET /proxies", "GET", "/proxies")
        if not isinstance(names, dict):
            raise ToxiproxyError(
                f"Toxiproxy at {self.url}: GET /proxies: expected an object of proxies, "
                f"got {type(names).__name__}: is this a Toxiproxy server?"
            )
        return sorted(str(name) for name in names)

    def delete_by_name(self, server_name: str) -> None:
        """Delete a proxy this process did not create (one left by a dead run)."""
        self._call(f"delete proxy {server_name}", "DELETE", _path(server_name))

    def add_toxic(
        self,
        handle: ProxyHandle,
        *,
        name: str,
        type: str,
        stream: str,
        toxicity: float,
        attributes: dict[str, Any],
    ) -> None:
        body = {
            "name": name,
            "type": type,
            "stream": stream,
            "toxicity": toxicity,
            "attributes": attributes,
        }
        self._call(
            f"add toxic {name} to {handle.server_name}",
            "POST",
            _path(handle.server_name) + "/toxics",
            body,
        )

    def remove_toxic(self, handle: ProxyHandle, name: str) -> None:
        self._call(
            f"remove toxic {name} from {handle.server_name}",
            "DELETE",
            _path(handle.server_name, name),
        )

    def set_enabled(self, handle: ProxyHandle, enabled: bool) -> None:
        # POST, not PATCH: every Toxiproxy 2.x accepts it (PATCH came later).
        self._call(
            f"{'enable' if enabled else 'disable'} {handle.server_name}",
            "POST",
            _path(handle.server_name),
            {"enabled": enabled},
        )


def check_upstream(upstream: str, allowed: Sequence[str]) -> str:
    """Blast radius: a chaos proxy forwards to loopback only, unless the host is allowlisted.

    Returns the upstream to give the server: a name is pinned to the loopback address it
    was checked at, so that it cannot resolve elsewhere on a later connection (DNS
    rebinding). An allowlisted host is trusted by name and returned as given. Raises
    ValueError naming the upstream and the setting that would allow it.
    """
    host, sep, port = upstream.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"upstream {upstream!r} is not host:port (port 1 to 65535)")
    if host in allowed:
        return upstream
    literal = _ip_literal(host)
    if literal is not None:  # nothing to resolve, nothing to pin (a proxy per test)
        if literal.is_loopback:
            return f"[{literal}]:{port}" if literal.version == 6 else f"{literal}:{port}"
        raise ValueError(_not_loopback(upstream))
    try:
        infos = socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise ValueError(f"upstream {upstream!r}: cannot resolve {host!r}: {exc}") from None
    addresses = [str(info[4][0]).split("%")[0] for info in infos]
    if addresses and all(ipaddress.ip_address(a).is_loopback for a in addresses):
        pinned = addresses[0]
        return f"[{pinned}]:{port}" if ":" in pinned else f"{pinned}:{port}"
    raise ValueError(_not_loopback(upstream))


def _not_loopback(upstream: str) -> str:
    return (
        f"upstream {upstream!r} is not a loopback address; chaos proxies only reach "
        f"loopback unless the host is listed in rafael_allowed_targets"
    )


def _ip_literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """``host`` as an IP address when it is written as one (no zone), else None."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


_LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1"})
