"""Fixtures for the plugin tests: a tiny project with a loopback echo server, written into
a pytester directory, and an embedded Toxiproxy server owned by the test process so that
what a pytest run leaves behind on it can be inspected afterwards."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from rafael_plugin_helpers import ECHO_CONFTEST

from pytest_rafael.toxiproxy import EmbeddedServer


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    """A pytester dir with the echo server conftest and a report/store inside it."""
    pytester.makeconftest(ECHO_CONFTEST)
    pytester.makeini(
        "[pytest]\n"
        "rafael_report_dir = reports\n"
        "rafael_store = .rafael/rafael.db\n"
        "rafael_genome_file = rafael.genome.yaml\n"
    )
    return pytester


@pytest.fixture
def external_toxiproxy() -> Iterator[EmbeddedServer]:
    """A Toxiproxy server that outlives the pytest run under test (``--rafael-toxiproxy``)."""
    with EmbeddedServer() as server:
        yield server
