"""A proxy: a listening socket, its open connections, its toxics and byte counters."""

from __future__ import annotations

import contextlib
import random
import socket
import threading
import time
from typing import Any

from pytest_rafael.toxiproxy import errors
from pytest_rafael.toxiproxy.address import AddressError, bind_error, resolve
from pytest_rafael.toxiproxy.link import Connection
from pytest_rafael.toxiproxy.stamps import RX_STAMPS, SO_TIMESTAMPNS
from pytest_rafael.toxiproxy.toxics import DOWNSTREAM, UPSTREAM, ToxicSpec
from pytest_rafael.toxiproxy.workers import POOL


def split_address(address: str, field_name: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port``, ``:port``) into its parts, or a 400 ApiError."""
    host, sep, port_text = address.rpartition(":")
    if not sep or not port_text.isdigit() or int(port_text) > 65535:
        raise errors.ApiError(f"invalid {field_name} address {address!r}: expected host:port", 400)
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port_text)


def format_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


_RESOLVE_TTL = 5.0  # seconds; Toxiproxy resolves per connection, we per burst


class Proxy:
    """One named proxy. Every method is called with the collection lock held, except the
    ones the data path uses (``chains``, ``connect_upstream``, ``new_rng``,
    ``connection_closed``), which are safe from any thread."""

    def __init__(
        self, name: str, listen: str, upstream: str, rng: random.Random, rng_lock: threading.Lock
    ) -> None:
        self.name = name
        self.listen = listen
        self.upstream = upstream
        self.enabled = False
        self.toxics: list[ToxicSpec] = []
        # Replaced as a whole on every change; pumps compare it by identity.
        self.chains: tuple[tuple[ToxicSpec, ...], tuple[ToxicSpec, ...]] = ((), ())
        self._rng = rng
        self._rng_lock = rng_lock
        self._listener: socket.socket | None = None
        self._accept_done: threading.Event | None = None
        self._port_chosen = False  # listening on a port given by number (not :0)
        self._conns: set[Connection] = set()
        self._lock = threading.Lock()
        # Closed connections' byte counts; live ones are summed at scrape time.
        self._received = [0, 0]
        self._sent = [0, 0]
        self.connections_total = 0

    # -- listening -----------------------------------------------------------------------

    def start(self) -> None:
        """Listen and accept; ``listen`` then names the real port (for ``:0``)."""
        if self.enabled:
            return
        try:
            address = resolve(self.listen)
        except AddressError as exc:
            raise errors.ApiError(f"listen tcp: {exc}", 500) from None
        split_address(self.upstream, "upstream")
        try:
            listener = _bind(address.host, address.port)
        except OSError as exc:
            # Toxiproxy reports listen failures as a plain (500) error, in Go's words.
            raise errors.ApiError(bind_error(address, exc), 500) from None
        bound_host, bound_port = listener.getsockname()[:2]
        # Like Go's listener.Addr(): the resolved address ("localhost" -> 127.0.0.1).
        self.listen = format_address(bound_host, bound_port)
        self._listener = listener
        self._port_chosen = address.port != 0
        self.enabled = True
        # On a pooled thread: creating a proxy per test must not wait for a new thread
        # to be scheduled (threading.Thread.start blocks until it runs).
        done = threading.Event()
        self._accept_done = done
        POOL.submit(lambda: self._accept_loop(listener, done))

    def stop(self) -> None:
        """Stop listening and drop every open connection."""
        if not self.enabled:
            return
        self.enabled = False
        listener, self._listener = self._listener, None
        if listener is not None:
            # The accepting thread closes the listener when it leaves: closing it here
            # could free its fd number while that thread is about to accept() on it.
            wait = self._port_chosen
            try:
                # Wakes accept() on Linux, refuses new connections and gives an
                # ephemeral port back at once.
                listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                _poke(listener)
                wait = True
            # A port given by number stays taken until the socket closes: wait, so that
            # the port is free when the proxy is, as with Toxiproxy. A proxy per test on
            # port 0 does not wait for the accepting thread to be scheduled.
            if wait and self._accept_done is not None:
                self._accept_done.wait(timeout=5)
        self.close_connections()

    def close_connections(self) -> None:
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            conn.close()

    def wait_closed(self, timeout: float) -> bool:
        """Wait until every connection's threads have left (after close_connections)."""
        deadline = time.monotonic() + timeout
        while self.open_connections():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.005)
        return True

    def _accept_loop(self, listener: socket.socket, done: threading.Event) -> None:
        """Accept one connection, pass the listener on to a pooled thread, serve it here.

        The thread that woke up for the connection runs its upstream pump itself: handing
        the connection to another thread would put a second wake-up (a wait for a core on
        a loaded machine) between the client's first bytes and the moment they are read,
        which is when a latency toxic starts counting.
        """
        conn = self._accept_next(listener)
        if conn is None:
            listener.close()
            done.set()
            return
        POOL.submit(lambda: self._accept_loop(listener, done))
        conn.run()

    def _accept_next(self, listener: socket.socket) -> Connection | None:
        """The next accepted connection, or None once the listener is closed."""
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                if self._listener is not listener:
                    return None
                time.sleep(0.01)  # e.g. EMFILE: do not spin
                continue
            conn = Connection(self, client)
            with self._lock:
                if self._listener is not listener:
                    client.close()
                    return None
                self._conns.add(conn)
                self.connections_total += 1
            return conn

    # -- toxics --------------------------------------------------------------------------

    def find_toxic(self, name: str) -> ToxicSpec:
        for toxic in self.toxics:
            if toxic.name == name:
                return toxic
        raise errors.TOXIC_NOT_FOUND

    def set_toxics(self, toxics: list[ToxicSpec]) -> None:
        self.toxics = toxics
        self.chains = (
            tuple(t for t in toxics if t.direction == UPSTREAM),
            tuple(t for t in toxics if t.direction == DOWNSTREAM),
        )
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            conn.wake()

    # -- used by connections (any thread) -------------------------------------------------

    def upstream_address(self) -> tuple[str, int]:
        return split_address(self.upstream, "upstream")

    def connect_upstream(self, timeout: float) -> socket.socket:
        """A connected socket to the upstream. Its addresses come from ``_addresses``
        (an IP literal needs no lookup; a name is looked up once per ``_RESOLVE_TTL``
        seconds for every proxy of this process, so a test that creates a proxy to the
        same service each time pays for none); a failed connect forgets them."""
        upstream = self.upstream
        infos = _addresses(upstream)
        error: OSError | None = None
        for family, kind, proto, _, address in infos:
            sock = socket.socket(family, kind, proto)
            try:
                sock.settimeout(timeout)
                sock.connect(address)
                return sock
            except OSError as exc:
                sock.close()
                error = exc
        _RESOLVED.pop(upstream, None)
        raise error or OSError(f"no address for {upstream}")

    def new_rng(self) -> random.Random:
        with self._rng_lock:
            return random.Random(self._rng.getrandbits(64))

    def connection_closed(self, conn: Connection) -> None:
        with self._lock:
            self._conns.discard(conn)
            for pump in conn.pumps:
                self._received[pump.direction] += pump.received
                self._sent[pump.direction] += pump.sent

    # -- views ---------------------------------------------------------------------------

    def open_connections(self) -> list[Connection]:
        with self._lock:
            return list(self._conns)

    def byte_counts(self) -> tuple[list[int], list[int]]:
        """(received, sent) per direction, closed plus live connections."""
        with self._lock:
            received, sent = list(self._received), list(self._sent)
            conns = list(self._conns)
        for conn in conns:
            for pump in conn.pumps:
                received[pump.direction] += pump.received
                sent[pump.direction] += pump.sent
        return received, sent

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "listen": self.listen,
            "upstream": self.upstream,
            "enabled": self.enabled,
            # Toxiproxy 2.12 marshals its exported zerolog field as an empty object.
            "Logger": {},
            "toxics": [t.to_json() for t in (*self.chains[UPSTREAM], *self.chains[DOWNSTREAM])],
        }


# upstream text -> (when resolved, getaddrinfo results), shared by every proxy; entries
# are replaced whole, never mutated, so readers on other threads need no lock.
_RESOLVED: dict[str, tuple[float, list[Any]]] = {}


def _literal(host: str, port: int) -> tuple[socket.AddressFamily, tuple[Any, ...]] | None:
    """The family and socket address of an IP literal host; None for a name (or zone)."""
    for family, address in (
        (socket.AF_INET, (host, port)),
        (socket.AF_INET6, (host, port, 0, 0)),
    ):
        try:
            socket.inet_pton(family, host)
        except (OSError, ValueError):
            continue
        return family, address
    return None


def _addresses(upstream: str) -> list[Any]:
    """getaddrinfo's answer for ``upstream`` (host:port), cached for ``_RESOLVE_TTL``."""
    host, port = split_address(upstream, "upstream")
    literal = _literal(host, port)
    if literal is not None:
        return [(literal[0], socket.SOCK_STREAM, socket.IPPROTO_TCP, "", literal[1])]
    now = time.monotonic()
    cached = _RESOLVED.get(upstream)
    if cached is not None and now - cached[0] < _RESOLVE_TTL:
        return cached[1]
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    _RESOLVED[upstream] = (now, infos)
    return infos


def _bind(host: str, port: int) -> socket.socket:
    if not host:
        try:
            sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            host = "::"
        except OSError:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            host = "0.0.0.0"
        address: Any = (host, port)
    else:
        literal = _literal(host, port)  # a literal needs no lookup (one per proxy created)
        if literal is None:
            resolved = socket.getaddrinfo(
                host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
            )
            literal = (resolved[0][0], resolved[0][4])
        address = literal[1]
        sock = socket.socket(literal[0], socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if RX_STAMPS:
            # Accepted sockets inherit it, so a client's first bytes are stamped even
            # before accept(); and while a proxy listens the kernel keeps stamping on
            # (it switches stamping on and off, lazily, as sockets ask for it).
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        sock.bind(address)
        sock.listen(socket.SOMAXCONN)
    except OSError:
        sock.close()
        raise
    return sock


def _poke(listener: socket.socket) -> None:
    """Wake a blocked accept() where shutdown() on a listener is not supported."""
    with (
        contextlib.suppress(OSError),
        socket.create_connection(listener.getsockname()[:2], timeout=1),
    ):
        pass
