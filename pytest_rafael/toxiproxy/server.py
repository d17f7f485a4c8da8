"""The in-process server the plugin starts: API, proxies and their threads.

Usage::

    with EmbeddedServer() as srv:          # port 0: a free loopback port
        Toxiproxy().update_api_consumer(srv.host, srv.port)
        ...
"""

from __future__ import annotations

import contextlib
import json
import threading
from pathlib import Path
from types import TracebackType
from typing import Any

from pytest_rafael.toxiproxy import errors
from pytest_rafael.toxiproxy.api import ApiHttpServer
from pytest_rafael.toxiproxy.collection import ProxyCollection


class EmbeddedServer:
    """A Toxiproxy-compatible server running in daemon threads of this process.

    Thread-safe: the HTTP API can be driven from any thread while traffic flows.
    ``seed`` makes toxicity rolls, latency jitter and slicer sizes reproducible.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, seed: int | None = None) -> None:
        self.host = host
        self.port = port
        self.seed = seed
        self.collection = ProxyCollection(seed)
        self._http: ApiHttpServer | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._http is not None

    def start(self) -> EmbeddedServer:
        """Bind the API port and serve; returns once it accepts connections."""
        with self._lock:
            if self._http is not None:
                return self
            _raise_fd_limit()
            http = ApiHttpServer((self.host, self.port), self.collection)
            self.port = http.server_address[1]
            thread = threading.Thread(
                target=http.serve_forever,
                kwargs={"poll_interval": 0.05},
                name="rafael-toxiproxy-api",
                daemon=True,
            )
            thread.start()
            self._http, self._thread = http, thread
            return self

    def stop(self) -> None:
        """Close the API, every proxy listener and every open connection. Idempotent."""
        with self._lock:
            http, thread = self._http, self._thread
            self._http = self._thread = None
        if http is None:
            self.collection.clear()  # proxies may exist without the API (load_config)
            return
        http.shutdown()
        http.close_all()
        http.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self.collection.clear()

    def populate(self, proxies: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Create proxies as ``POST /populate`` does (raises ApiError on bad input)."""
        return self.collection.populate(proxies)

    def load_config(self, path: str | Path) -> list[dict[str, Any]]:
        """Populate from a Toxiproxy ``-config`` JSON file (a list of proxies)."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise errors.ApiError(f"cannot read config {path}: {exc.strerror}", 400) from None
        except ValueError as exc:
            raise errors.ApiError(f"config {path} is not valid JSON: {exc}", 400) from None
        return self.populate(data)

    def __enter__(self) -> EmbeddedServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _raise_fd_limit() -> None:
    """Each proxied connection holds up to 8 fds (2 sockets, 2 pipes, 2 eventfds):
    lift the soft limit to the hard one so hundreds of connections fit."""
    with contextlib.suppress(ImportError, ValueError, OSError):
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or soft < hard):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
