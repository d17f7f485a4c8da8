"""Fixtures of the example: the counter service and a chaos proxy "db" in front of it."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest
from counter import CounterServer
from hypothesis import settings

import pytest_rafael.scenario.hypothesis_profiles  # noqa: F401  (registers "rafael", "rafael-ci")
from pytest_rafael.faults.network import ProxyHandle

settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "rafael"))


@pytest.fixture
def counter() -> Iterator[CounterServer]:
    with CounterServer() as server:
        yield server


@pytest.fixture
def db(chaos_proxy: Callable[..., ProxyHandle], counter: CounterServer) -> ProxyHandle:
    return chaos_proxy("db", upstream=counter.address)
