"""rafael_worker gives each pytest-xdist worker its own namespace in shared state;
rafael_redis and rafael_postgres start real servers on loopback TCP for chaos tests."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator

import pytest

from pytest_rafael import servers
from pytest_rafael.servers import Server

WORKER_REPORT = """
import json, pathlib
import pytest

@pytest.mark.parametrize("n", range(4))
def test_where(n, rafael_worker):
    out = pathlib.Path(__file__).parent / f"w{n}.json"
    out.write_text(json.dumps({"id": rafael_worker.id, "number": rafael_worker.number,
                               "count": rafael_worker.count, "prefix": rafael_worker.prefix,
                               "name": rafael_worker.name("jobs"), "db": rafael_worker.db(1)}))
"""


def _seen(pytester: pytest.Pytester) -> list[dict[str, object]]:
    return [json.loads((pytester.path / f"w{n}.json").read_text()) for n in range(4)]


def test_without_xdist_the_worker_is_main(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(WORKER_REPORT)
    pytester.runpytest_subprocess("-p", "no:xdist").assert_outcomes(passed=4)
    assert {json.dumps(s, sort_keys=True) for s in _seen(pytester)} == {
        json.dumps(
            {
                "id": "main",
                "number": 0,
                "count": 1,
                "prefix": "main:",
                "name": "jobs_main",
                "db": 1,
            },
            sort_keys=True,
        )
    }


def test_each_xdist_worker_has_its_own_namespace(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(WORKER_REPORT)
    pytester.runpytest_subprocess("-n", "2", "--dist", "loadgroup").assert_outcomes(passed=4)
    by_id = {str(s["id"]): s for s in _seen(pytester)}
    for worker_id, seen in by_id.items():
        number = int(worker_id.removeprefix("gw"))
        assert seen == {
            "id": worker_id,
            "number": number,
            "count": 2,
            "prefix": f"{worker_id}:",
            "name": f"jobs_{worker_id}",
            "db": 1 + number,
        }


@pytest.fixture(scope="module")
def shared_redis() -> Iterator[Server]:
    try:
        with servers.redis_server() as server:
            yield server
    except servers.ServerUnavailable as exc:
        pytest.skip(str(exc))


def test_workers_sharing_one_redis_do_not_touch_each_others_data(
    pytester: pytest.Pytester, shared_redis: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Like the rq suite of issue 19: every test flushes "its" database and fills "its"
    queue. With the worker's database and queue names, two workers at once lose nothing."""
    pytest.importorskip("redis")
    monkeypatch.setenv("SHARED_REDIS", shared_redis.address)
    pytester.makepyfile("""
        import os, time
        import pytest
        import redis

        @pytest.mark.parametrize("n", range(6))
        def test_queue(n, rafael_worker):
            host, port = os.environ["SHARED_REDIS"].split(":")
            client = redis.Redis(host=host, port=int(port), db=rafael_worker.db(1))
            client.flushdb()
            queue = rafael_worker.name("jobs")
            for i in range(50):
                client.rpush(queue, f"{n}-{i}")
                client.set(rafael_worker.prefix + f"last", i)
            time.sleep(0.05)  # the other worker runs meanwhile
            assert client.llen(queue) == 50
            assert [client.lpop(queue) for _ in range(50)][0] == f"{n}-0".encode()
    """)
    pytester.runpytest_subprocess("-n", "2").assert_outcomes(passed=6)


def test_rafael_redis_serves_behind_a_chaos_proxy(pytester: pytest.Pytester) -> None:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    pytester.makepyfile("""
        from pytest_rafael.servers import redis_ready

        def test_ping(rafael_redis, chaos_proxy):
            db = chaos_proxy("db", rafael_redis.address)
            assert redis_ready(db.host, db.port)
            assert rafael_redis.url == f"redis://{rafael_redis.address}/0"
    """)
    pytester.runpytest_subprocess().assert_outcomes(passed=1)


def test_rafael_postgres_serves_on_loopback_tcp_behind_a_chaos_proxy(
    pytester: pytest.Pytester,
) -> None:
    if servers.postgres_bindir() is None:
        pytest.skip("PostgreSQL is not installed (pip install pgserver, or the postgresql package)")
    pytester.makepyfile("""
        import subprocess
        import pytest
        from pytest_rafael.servers import postgres_bindir, postgres_ready

        def test_query(rafael_postgres, chaos_proxy):
            assert rafael_postgres.host == "127.0.0.1"
            db = chaos_proxy("db", rafael_postgres.address)
            assert postgres_ready(db.host, db.port)
            psql = postgres_bindir() / "psql"
            if psql.exists():
                out = subprocess.run([str(psql), "-h", db.host, "-p", str(db.port), "-U",
                                      "postgres", "-tAc", "select 40 + 2"],
                                     capture_output=True, text=True, check=True)
                assert out.stdout.strip() == "42"

        @pytest.mark.chaos("db_failure", iterations=1)
        def test_under_chaos(rafael_postgres, chaos_proxy, chaos):
            import time
            db = chaos_proxy("db", rafael_postgres.address)
            answers = []
            deadline = time.monotonic() + 1.5   # db_failure: resets, then down, then back
            while time.monotonic() < deadline:
                answers.append(postgres_ready(db.host, db.port))
                time.sleep(0.05)
            # the fault was observed under chaos, and not in the run without faults
            assert (False in answers) is chaos.active
    """)
    result = pytester.runpytest_subprocess("--rafael-chaos", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=3)


def test_a_missing_server_skips_with_the_reason(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile("""
        def test_redis(rafael_redis):
            pass
    """)
    monkeypatch.setenv("PATH", str(pytester.path))  # no redis-server on it
    result = pytester.runpytest_subprocess("-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*rafael_redis: redis-server is not installed*"])


def test_no_postgres_binaries_is_a_clear_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(servers, "postgres_bindir", lambda: None)
    with (
        pytest.raises(servers.ServerUnavailable, match="pip install pgserver"),
        servers.postgres_server(),
    ):
        pass


@pytest.mark.skipif(os.geteuid() != 0, reason="only root needs the postgres account")
def test_as_root_postgres_runs_as_the_postgres_account() -> None:
    if servers.postgres_bindir() is None:
        pytest.skip("PostgreSQL is not installed")
    import pwd

    try:
        expected = pwd.getpwnam("postgres").pw_uid
    except KeyError:
        pytest.skip("no postgres account")
    assert servers._postgres_account() == (expected, pwd.getpwnam("postgres").pw_gid)


def test_postgres_server_creates_the_named_database() -> None:
    if servers.postgres_bindir() is None:
        pytest.skip("PostgreSQL is not installed")
    try:
        with servers.postgres_server("orders") as pg:
            assert pg.url == f"postgresql://postgres@{pg.address}/orders"
            assert servers.postgres_ready(pg.host, pg.port, database="orders")
            assert not servers.postgres_ready(pg.host, pg.port, database="no_such_db")
        assert not servers.postgres_ready(pg.host, pg.port)  # stopped and removed
    except servers.ServerUnavailable as exc:
        pytest.skip(str(exc))
