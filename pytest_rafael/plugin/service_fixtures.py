"""Fixtures for tests that use real external state: ``rafael_worker`` (a namespace per
pytest-xdist worker), ``rafael_redis`` and ``rafael_postgres`` (real servers on loopback
TCP, ready to put behind ``chaos_proxy``)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from pytest_rafael.servers import Server, ServerUnavailable, postgres_server, redis_server


@dataclass(frozen=True)
class Worker:
    """This test process's share of shared external state.

    With ``pytest -n 2`` two processes run tests at once; if both use Redis database 0, or
    the same queue, they flush each other's data and take each other's items. Use
    ``number`` for database numbers, ``prefix`` for keys, ``name(...)`` for queues,
    databases and schemas. Without xdist: id ``main``, number 0, one worker.
    """

    id: str  # "gw0", "gw1", ... or "main"
    number: int  # 0, 1, ...: the worker's index
    count: int  # how many workers run

    @property
    def prefix(self) -> str:
        """A key prefix: ``rafael_worker.prefix + "session:1"`` is ``gw1:session:1``."""
        return f"{self.id}:"

    @property
    def suffix(self) -> str:
        """A name suffix: ``"jobs" + rafael_worker.suffix`` is ``jobs_gw1``."""
        return f"_{self.id}"

    def name(self, base: str) -> str:
        """``base`` made this worker's own: a queue, database or schema name."""
        return base + self.suffix

    def db(self, first: int = 0) -> int:
        """A database number of its own, from ``first`` up (Redis has 0-15 by default)."""
        return first + self.number


def current_worker(config: pytest.Config) -> Worker:
    from pytest_rafael.plugin.xdist_support import worker_id

    found = worker_id(config)
    if found is None:  # not an xdist worker, whatever the inherited env says
        return Worker("main", 0, 1)
    count = int(config.workerinput.get("workercount", 1))  # type: ignore[attr-defined]
    digits = found.removeprefix("gw")
    return Worker(found, int(digits) if digits.isdigit() else 0, max(count, 1))


@pytest.fixture(scope="session")
def rafael_worker(pytestconfig: pytest.Config) -> Worker:
    """This xdist worker's namespace: ``.id``, ``.number``, ``.prefix``, ``.name(base)``,
    ``.db(first=0)``."""
    return current_worker(pytestconfig)


@contextlib.contextmanager
def _or_skip(kind: str, server: contextlib.AbstractContextManager[Server]) -> Iterator[Server]:
    with contextlib.ExitStack() as stack:
        try:
            running = stack.enter_context(server)
        except ServerUnavailable as exc:
            pytest.skip(f"rafael_{kind}: {exc}")
        yield running  # the server stops, and its files go, when the block ends


@pytest.fixture(scope="session")
def rafael_redis() -> Iterator[Server]:
    """A private Redis server on a free loopback port for this session (each xdist worker
    gets its own): ``.host``, ``.port``, ``.address`` (for ``chaos_proxy``), ``.url``.
    Skips when redis-server is not installed."""
    with _or_skip("redis", redis_server()) as server:
        yield server


@pytest.fixture(scope="session")
def rafael_postgres() -> Iterator[Server]:
    """A private PostgreSQL cluster on a free loopback TCP port for this session (user
    ``postgres``, trust authentication, database ``postgres``): ``.address``, ``.url``.
    Binaries come from the ``pgserver`` wheel or the distribution's package; skips when
    neither is installed."""
    with _or_skip("postgres", postgres_server()) as server:
        yield server
