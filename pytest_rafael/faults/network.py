"""The client side of network faults: proxies and toxics on the Toxiproxy server in use.

The plugin talks to Toxiproxy through toxiproxy-python, so the embedded server and the
real one are driven by the same client. That client has no timeouts and keeps its
address in class attributes; we bound every control call with a deadline (a hung control
port must not hang the test run, nor keep a fault from being reverted) and point it at
one server per process.
"""

from __future__ import annotations

import concurrent.futures
import ipaddress
import queue
import socket
import threading
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

from pytest_rafael.errors import RafaelError

T = TypeVar("T")


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


class _DaemonWorker:
    """One daemon thread running submitted calls in order. Unlike ThreadPoolExecutor's
    workers, it never holds up interpreter exit when a call hangs."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]]] = (
            queue.SimpleQueue())
        threading.Thread(target=self._run, name="rafael-toxiproxy", daemon=True).start()

    def _run(self) -> None:
        while True:
            call, future = self._queue.get()
            try:
                future.set_result(call())
            except BaseException as exc:
                future.set_exception(exc)

    def submit(self, call: Callable[[], T]) -> Future[T]:
        future: Future[T] = Future()
        self._queue.put((call, future))
        return future


class ToxiproxyControl:
    """Bounded control of one Toxiproxy server (embedded or external)."""

    def __init__(
        self,
        url: str,
        timeout: float = 5.0,
        *,
        ports: tuple[int, int] | None = None,
        connect_host: str | None = None,
        ports_source: str = "--rafael-toxiproxy-ports",
    ) -> None:
        from toxiproxy import Toxiproxy

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
        local = self.connect_host in _LOOPBACK_NAMES and ports is None
        self.listen_host = "127.0.0.1" if local else "0.0.0.0"
        self._taken: set[int] = set()
        self.client = Toxiproxy()
        # toxiproxy-python keeps the server address at class level: one server per process.
        self.client.update_api_consumer(self.host, self.port)
        self._proxies: dict[str, Any] = {}
        self._worker = _DaemonWorker()

    def _call(self, what: str, call: Callable[[], T]) -> T:
        """Run one control call with a deadline, on a worker thread kept for reuse. When
        the server hangs, that worker is abandoned (it dies with the process) and the
        caller gets an error in time; the next call gets a fresh worker."""

        def pointed() -> T:
            # toxiproxy-python's server address is process-wide: another control in this
            # process (an in-process pytester run, say) may have re-pointed it since.
            self.client.update_api_consumer(self.host, self.port)
            return call()

        future = self._worker.submit(pointed)
        try:
            return future.result(timeout=self.timeout)
        except concurrent.futures.TimeoutError:
            self._worker = _DaemonWorker()
            raise ToxiproxyError(
                f"Toxiproxy at {self.url} did not answer {what} within {self.timeout:g} s"
            ) from None
        except Exception as exc:
            detail = exc.args[0] if exc.args else exc
            if isinstance(detail, bytes):
                detail = detail.decode(errors="replace")
            # One line, short: a requests error or an HTML page must not flood the output.
            lines = str(detail).strip().splitlines() or [type(exc).__name__]
            raise ToxiproxyError(
                f"Toxiproxy at {self.url}: {what} failed: {type(exc).__name__}: "
                f"{lines[0][:200]}"
            ) from None

    def version(self) -> str:
        """The server's version; raises ToxiproxyError when it does not answer.

        (toxiproxy-python's ``Toxiproxy.version()`` returns None for a closed port, so the
        request goes through its API consumer, which raises.)"""
        from toxiproxy.api import APIConsumer

        raw = self._call("GET /version", lambda: APIConsumer.get("/version").content)
        return raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)

    def create_proxy(self, name: str, upstream: str, *, unique_suffix: str = "",
                     server_name: str | None = None) -> ProxyHandle:
        server_name = server_name or f"{name}-{unique_suffix or uuid.uuid4().hex[:8]}"
        if self.ports is None:
            proxy = self._create(server_name, upstream, f"{self.listen_host}:0")
        else:
            proxy = self._create_in_range(server_name, upstream)
        self._proxies[server_name] = proxy
        _, _, port = str(proxy.listen).rpartition(":")
        self._taken.add(int(port))
        host = self.connect_host if self.listen_host == "0.0.0.0" else self.listen_host
        return ProxyHandle(name, server_name, upstream, host, int(port))

    def _create(self, server_name: str, upstream: str, listen: str) -> Any:
        return self._call(
            f"create proxy {server_name}",
            lambda: self.client.create(upstream=upstream, name=server_name, listen=listen),
        )

    def _create_in_range(self, server_name: str, upstream: str) -> Any:
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
            f"{len(self._proxies)}); widen the range"
        )

    def delete_proxy(self, handle: ProxyHandle) -> None:
        proxy = self._proxies.pop(handle.server_name, None)
        if proxy is not None:
            self._call(f"delete proxy {handle.server_name}", proxy.destroy)
            self._taken.discard(handle.port)

    def proxy_names(self) -> list[str]:
        """The names of every proxy on the server."""
        from toxiproxy.api import APIConsumer

        return sorted(self._call("GET /proxies", lambda: APIConsumer.get("/proxies").json()))

    def delete_by_name(self, server_name: str) -> None:
        """Delete a proxy this process did not create (one left by a dead run)."""
        from urllib.parse import quote

        from toxiproxy.api import APIConsumer

        path = f"/proxies/{quote(server_name, safe='')}"
        self._call(f"delete proxy {server_name}", lambda: APIConsumer.delete(path))

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
        proxy = self._proxies[handle.server_name]
        self._call(
            f"add toxic {name} to {handle.server_name}",
            lambda: proxy.add_toxic(
                name=name, type=type, stream=stream, toxicity=toxicity, attributes=attributes
            ),
        )

    def remove_toxic(self, handle: ProxyHandle, name: str) -> None:
        proxy = self._proxies[handle.server_name]
        self._call(
            f"remove toxic {name} from {handle.server_name}", lambda: proxy.destroy_toxic(name)
        )

    def set_enabled(self, handle: ProxyHandle, enabled: bool) -> None:
        proxy = self._proxies[handle.server_name]
        action = proxy.enable if enabled else proxy.disable
        self._call(f"{'enable' if enabled else 'disable'} {handle.server_name}", action)


_LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1"})


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
    try:
        infos = socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise ValueError(f"upstream {upstream!r}: cannot resolve {host!r}: {exc}") from None
    addresses = [str(info[4][0]).split("%")[0] for info in infos]
    if addresses and all(ipaddress.ip_address(a).is_loopback for a in addresses):
        pinned = addresses[0]
        return f"[{pinned}]:{port}" if ":" in pinned else f"{pinned}:{port}"
    raise ValueError(
        f"upstream {upstream!r} is not a loopback address; chaos proxies only reach "
        f"loopback unless the host is listed in rafael_allowed_targets"
    )
