"""Fixtures for the toxiproxy tests: an embedded server and a loopback echo upstream."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from toxiproxy_helpers import Upstream, echo_handler

from pytest_rafael.toxiproxy import EmbeddedServer


@pytest.fixture
def echo() -> Iterator[Upstream]:
    upstream = Upstream(echo_handler)
    yield upstream
    upstream.close()


@pytest.fixture
def server() -> Iterator[EmbeddedServer]:
    with EmbeddedServer(seed=1234) as srv:
        yield srv
