"""Embedded Toxiproxy-compatible server (HTTP API, proxies, every 2.x toxic).

Importing this package does not start anything; :class:`EmbeddedServer` does.
"""

from __future__ import annotations

from pytest_rafael.toxiproxy.errors import ApiError
from pytest_rafael.toxiproxy.server import EmbeddedServer

__all__ = ["ApiError", "EmbeddedServer"]
