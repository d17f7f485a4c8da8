"""The plugin's control calls to the embedded Toxiproxy server in this same process.

The embedded server lives in the test process, so an HTTP round trip to it (the client
writes, the server's thread wakes, answers, the client wakes) only adds thread switches:
on a loaded machine each one waits for a core. This transport calls the same collection
methods the HTTP API calls, with the same status codes and error texts, so the plugin
sees no difference except speed. Users' clients (``toxiproxy.client``, curl) still go
through HTTP; an external server (``--rafael-toxiproxy URL``) always does.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from pytest_rafael.faults.control_http import Reply

if TYPE_CHECKING:
    from pytest_rafael.toxiproxy import EmbeddedServer


def _json(status: int, value: Any) -> Reply:
    return Reply(status, json.dumps(value, separators=(",", ":")).encode())


class LocalTransport:
    """Routes the plugin's few control requests to an in-process server's collection."""

    def __init__(self, server: EmbeddedServer) -> None:
        self._server = server

    def request(self, method: str, path: str, body: object = None) -> Reply:
        from pytest_rafael.toxiproxy import errors
        from pytest_rafael.toxiproxy.api import VERSION

        parts = [unquote(part) for part in path.strip("/").split("/")]
        collection = self._server.collection
        try:
            if parts == ["version"] and method == "GET":  # the API's exact bytes
                return Reply(200, (json.dumps({"version": VERSION}) + "\n").encode())
            if parts[0] != "proxies":
                raise errors.ApiError("404 page not found", 404)
            if len(parts) == 1 and method == "POST":
                return _json(201, collection.create(body))
            if len(parts) == 1 and method == "GET":
                return _json(200, collection.all())
            if len(parts) == 2 and method == "DELETE":
                collection.delete(parts[1])
                return Reply(204, b"")
            if len(parts) == 2 and method in ("POST", "PATCH"):
                return _json(200, collection.update(parts[1], body))
            if len(parts) == 3 and parts[2] == "toxics" and method == "POST":
                return _json(200, collection.add_toxic(parts[1], body))
            if len(parts) == 4 and parts[2] == "toxics" and method == "DELETE":
                collection.remove_toxic(parts[1], parts[3])
                return Reply(204, b"")
            raise errors.ApiError(f"no local route for {method} {path}", 405)
        except errors.ApiError as exc:
            return _json(exc.status, exc.to_json())

    def close(self) -> None:
        """Nothing to close: there is no connection."""
