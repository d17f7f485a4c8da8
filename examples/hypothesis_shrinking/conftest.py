"""Fixtures of the example: the ledger "db" and a chaos proxy in front of it."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest
from hypothesis import settings
from ledger import BALANCES, LedgerServer

import pytest_rafael.scenario.hypothesis_profiles  # noqa: F401  (registers "rafael", "rafael-ci")
from pytest_rafael.faults.network import ProxyHandle

# Real sockets and timeouts: no per-example deadline, a modest number of examples.
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "rafael"))


@pytest.fixture(scope="session")
def ledger() -> Iterator[LedgerServer]:
    with LedgerServer(BALANCES) as server:
        yield server


@pytest.fixture
def db(chaos_proxy: Callable[..., ProxyHandle], ledger: LedgerServer) -> ProxyHandle:
    """The proxy named "db" the client connects through; schedules target it by name.
    Created once per test and shared by all Hypothesis examples: every example's faults
    are reverted when its `with` block ends."""
    return chaos_proxy("db", upstream=ledger.address)
