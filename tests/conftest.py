"""Fixtures shared by the whole suite: one real PostgreSQL server per test session, a
fresh database in it per test, and ``store_target`` to run a test on both backends.

A test (or module, with ``pytestmark``) marked ``backends`` whose fixtures reach
``store_target`` runs once per backend; ``sqlite_only`` keeps a test that reads the
SQLite file itself (tampering with it, say) on SQLite.

Some libraries are imported here, once, before any in-process pytester run.
``pytester.runpytest()`` restores ``sys.modules`` after each in-process run. A library
first imported inside such a run is imported a second time later, and objects of the
first copy then fail ``isinstance`` checks against the second: requests refuses its own
cookie jar ("You can only merge into CookieJar") inside toxiproxy-python. Importing them
here keeps one copy for the whole session.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
import requests  # noqa: F401
import toxiproxy
import toxiproxy.api  # noqa: F401

from pytest_rafael.servers import Server, ServerUnavailable, postgres_server

BACKENDS = ("sqlite", "postgresql")


def _cache_bytecode_for_child_processes() -> None:
    """Hundreds of tests start Python processes (pytest runs, the rafael CLI). Where
    PYTHONDONTWRITEBYTECODE is set (CI images often set it to keep source trees clean),
    each of them compiles the package from source again: about 0.5 s a process. Children
    keep their bytecode in a cache folder of this user's instead, outside the tree."""
    if not os.environ.get("PYTHONDONTWRITEBYTECODE") or os.environ.get("PYTHONPYCACHEPREFIX"):
        return
    import tempfile

    folder = Path(tempfile.gettempdir()) / f"pytest-rafael-pycache-{os.getuid()}"
    try:
        folder.mkdir(mode=0o700, exist_ok=True)
        info = folder.lstat()
    except OSError:
        return
    # Only a folder that is ours and nobody else can write: bytecode found there runs.
    if folder.is_symlink() or info.st_uid != os.getuid() or info.st_mode & 0o022:
        return
    os.environ["PYTHONPYCACHEPREFIX"] = str(folder)
    del os.environ["PYTHONDONTWRITEBYTECODE"]


_cache_bytecode_for_child_processes()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[Server]:
    """A real PostgreSQL for this session (each xdist worker has its own). Skipped with
    the reason when none can be started here; in CI (``CI`` or
    ``RAFAEL_TESTS_REQUIRE_POSTGRES`` set, as ``.ci/run`` does) that is a failure: CI
    must run the PostgreSQL tests (``.ci/run`` installs the server)."""
    with ExitStack() as stack:
        try:
            server = stack.enter_context(postgres_server())
        except ServerUnavailable as exc:
            if os.environ.get("CI") or os.environ.get("RAFAEL_TESTS_REQUIRE_POSTGRES"):
                pytest.fail(f"CI cannot start PostgreSQL: {exc}")
            pytest.skip(f"no PostgreSQL here: {exc}")
        yield server


def _admin(server: Server, sql: str) -> None:
    import psycopg

    with psycopg.connect(server.url, autocommit=True) as conn:
        conn.execute(sql)


@pytest.fixture
def pg_url(pg_server: Server) -> Iterator[str]:
    """The URL of a fresh, empty database on the session's server, dropped afterwards."""
    name = f"rafael_{uuid.uuid4().hex[:12]}"
    _admin(pg_server, f"CREATE DATABASE {name}")
    yield f"postgresql://{pg_server.user}@{pg_server.host}:{pg_server.port}/{name}"
    _admin(pg_server, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "backends: run the test on SQLite and PostgreSQL")
    config.addinivalue_line("markers", "sqlite_only: the test reads the SQLite file itself")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    node = metafunc.definition
    if (
        "backend" in metafunc.fixturenames
        and node.get_closest_marker("backends")
        and not node.get_closest_marker("sqlite_only")
        # A test that names its backend itself.
        and not any(
            m.args and "backend" in str(m.args[0]) for m in node.iter_markers("parametrize")
        )
    ):
        metafunc.parametrize("backend", BACKENDS, indirect=True)


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    return str(getattr(request, "param", "sqlite"))


@pytest.fixture
def store_target(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Path | str:
    """Where a test's store lives: an SQLite file, or a fresh PostgreSQL database."""
    if backend == "postgresql":
        return str(request.getfixturevalue("pg_url"))
    return tmp_path / ".rafael" / "rafael.db"


@pytest.fixture
def pytester(pytester: pytest.Pytester) -> Iterator[pytest.Pytester]:
    """The pytest runs a test starts leave out two plugins that cost time and that
    nothing they check goes through. pytest-benchmark, when installed, asks git,
    Mercurial and ``file`` about the machine for its report header. Hypothesis' plugin
    imports all of Hypothesis at the end of every session (its terminal summary looks
    for observation files), about 0.3 s a process: a child process keeps it when the
    project uses Hypothesis, as a user's run would have it."""
    # Set after pytester's own set-up, which clears PYTEST_ADDOPTS.
    os.environ["PYTEST_ADDOPTS"] = "-p no:benchmark"
    run_in_child = pytester.runpytest_subprocess

    def run(*args: str | os.PathLike[str], timeout: float | None = None) -> pytest.RunResult:
        blocked = "" if _uses_hypothesis(pytester.path, args) else " -p no:hypothesispytest"
        os.environ["PYTEST_ADDOPTS"] = "-p no:benchmark" + blocked
        try:
            return run_in_child(*args, timeout=timeout)
        finally:
            os.environ["PYTEST_ADDOPTS"] = "-p no:benchmark"

    pytester.runpytest_subprocess = run  # type: ignore[method-assign]
    yield pytester
    os.environ.pop("PYTEST_ADDOPTS", None)


_HYPOTHESIS_WORDS = ("hypothesis", "strategies", "schedules", "StateMachine", "given(")
_PROJECT_FILES = {".py", ".ini", ".cfg", ".toml", ".yaml", ".yml"}


def _uses_hypothesis(folder: Path, args: tuple[str | os.PathLike[str], ...]) -> bool:
    if any("hypothesis" in str(arg) for arg in args):
        return True
    for path in folder.rglob("*"):
        if path.suffix in _PROJECT_FILES and path.is_file():
            text = path.read_text(encoding="utf-8", errors="replace")
            if any(word in text for word in _HYPOTHESIS_WORDS):
                return True
    return False
