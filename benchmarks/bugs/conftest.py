"""Fixtures for each planted bug's own chaos test (``pytest benchmarks/bugs/<bug>.py``):
the bug module's services, and a chaos proxy per target in front of them."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.bugs._kit import BaseSystem  # noqa: E402


@pytest.fixture
def planted(
    request: pytest.FixtureRequest, chaos_proxy: Callable[..., Any]
) -> Iterator[tuple[BaseSystem, dict[str, str]]]:
    system: BaseSystem = request.module.System()
    try:
        addrs = {}
        for target, upstream in system.upstreams().items():
            handle = chaos_proxy(target, upstream=upstream)
            addrs[target] = f"{handle.host}:{handle.port}"
        yield system, addrs
    finally:
        system.close()
