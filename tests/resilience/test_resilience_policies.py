"""@antifragile applies real policies: retries, breaker, timeouts, fallback, cache,
bulkhead, rate limit; counters count what happened."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from pytest_rafael.genome.genome import Genome
from pytest_rafael.resilience import (
    AttemptTimeout,
    BulkheadFull,
    CircuitOpenError,
    RateLimitExceeded,
    antifragile,
    current_timeout,
    runtime,
)

_n = 0


def genome(module: str, **genes: dict[str, Any]) -> Genome:
    # Declared idempotent: these tests exercise the policies, and a retry of an
    # idempotent call retries every error (see test_resilience_delivery.py for the rest).
    return Genome.from_dict(module, {"genes": genes, "idempotent": True})


@pytest.fixture
def module(request: pytest.FixtureRequest) -> Iterator[str]:
    global _n
    _n += 1
    name = f"m{_n}_{request.node.name[:20]}"
    runtime.reset_counters(name)
    return name


class FakeClock:
    """A monotonic clock the test moves by hand: timing is exact on a loaded machine."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Flaky:
    def __init__(self, failures: int, exc: type[Exception] = ConnectionError) -> None:
        self.failures, self.exc, self.calls = failures, exc, 0

    def __call__(self, x: int = 0) -> int:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.exc("boom")
        return x + 1


def test_retry_recovers_and_counts(module: str) -> None:
    flaky = Flaky(2)
    f = antifragile(module)(flaky)
    with runtime.use_genome(genome(module, retry={"max_attempts": 3, "base_delay": 0.0}), module):
        assert f(1) == 2
    c = runtime.counters(module)
    assert (c["calls"], c["attempts"], c["attempt_failures"], c["successes"]) == (1, 3, 2, 1)
    assert c["recovered_at_s"] is not None
    assert c["last_failure_at_s"] is not None
    assert c["recovered_at_s"] >= c["last_failure_at_s"]


def test_retry_gives_up_and_respects_on(module: str) -> None:
    f = antifragile(module)(Flaky(5))
    g = genome(module, retry={"max_attempts": 3, "base_delay": 0.0})
    with runtime.use_genome(g, module), pytest.raises(ConnectionError):
        f()
    assert runtime.counters(module)["attempts"] == 3
    assert runtime.counters(module)["failures"] == 1
    runtime.reset_counters(module)
    only = genome(module, retry={"max_attempts": 3, "base_delay": 0.0, "on": ["TimeoutError"]})
    f2 = antifragile(module)(Flaky(1, KeyError))
    with runtime.use_genome(only, module), pytest.raises(KeyError):
        f2()
    assert runtime.counters(module)["attempts"] == 1


def test_backoff_really_waits(module: str) -> None:
    f = antifragile(module)(Flaky(2))
    g = genome(
        module, retry={"max_attempts": 3, "base_delay": 0.05, "multiplier": 2.0, "jitter": 0.0}
    )
    t0 = time.perf_counter()
    with runtime.use_genome(g, module):
        f()
    assert time.perf_counter() - t0 >= 0.05 + 0.1 - 0.01


def test_circuit_breaker_opens_fails_fast_and_recovers(module: str) -> None:
    calls = {"n": 0, "fail": True}

    def dep() -> str:
        calls["n"] += 1
        if calls["fail"]:
            raise ConnectionError("down")
        return "up"

    f = antifragile(module)(dep)
    g = genome(module, circuit_breaker={"failure_threshold": 3, "reset_timeout": 0.1})
    clock = FakeClock()
    with runtime.use_genome(g, module):
        runtime.slot(module).load().breaker.clock = clock  # type: ignore[union-attr]
        for _ in range(3):
            with pytest.raises(ConnectionError):
                f()
        with pytest.raises(CircuitOpenError):
            f()
        assert calls["n"] == 3  # not attempted while open
        assert runtime.counters(module)["breaker_trips"] == 1
        clock.advance(0.09)
        with pytest.raises(CircuitOpenError):
            f()  # still open just before reset_timeout
        clock.advance(0.02)
        calls["fail"] = False
        assert f() == "up"  # half-open trial succeeds and closes
        assert f() == "up"
    assert calls["n"] == 5


def test_rate_based_breaker(module: str) -> None:
    outcomes = iter([True, False, True, False, True, True] + [False] * 10)

    def dep() -> None:
        if next(outcomes):
            raise OSError("fail")

    f = antifragile(module)(dep)
    g = genome(
        module,
        circuit_breaker={
            "failure_rate": 0.6,
            "window": 5,
            "failure_threshold": 5,
            "reset_timeout": 60,
        },
    )
    with runtime.use_genome(g, module):
        results = []
        for _ in range(7):
            try:
                f()
                results.append("ok")
            except CircuitOpenError:
                results.append("open")
            except OSError:
                results.append("fail")
    # after 5 calls: 3/5 failed = 0.6 -> open
    assert results == ["fail", "ok", "fail", "ok", "fail", "open", "open"]


def test_open_breaker_stops_retrying_and_falls_back(module: str) -> None:
    flaky = Flaky(100)
    f = antifragile(module)(flaky)
    g = genome(
        module,
        retry={"max_attempts": 10, "base_delay": 0.0},
        circuit_breaker={"failure_threshold": 2, "reset_timeout": 60},
        fallback={"value": "cached page"},
    )
    with runtime.use_genome(g, module):
        assert f() == "cached page"
    assert flaky.calls == 2
    c = runtime.counters(module)
    assert c["rejections"] == 1
    assert c["fallbacks"] == 1
    assert c["breaker_trips"] == 1


def test_sync_timeout_with_current_timeout_on_a_real_socket(module: str) -> None:
    # A loopback server that accepts and never answers: the client sets its socket
    # timeout from the genome, so the attempt really stops at the budget.
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    conns: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.05)
        while not stop.is_set():
            try:
                conns.append(server.accept()[0])
            except OSError:
                continue

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    budgets: list[float | None] = []

    @antifragile(module)
    def fetch() -> bytes:
        budgets.append(current_timeout())
        with socket.create_connection(("127.0.0.1", port), timeout=current_timeout()) as s:
            s.sendall(b"GET\n")
            return s.recv(10)

    g = genome(
        module,
        timeout={"seconds": 0.2},
        retry={"max_attempts": 2, "base_delay": 0.0, "on": ["OSError"]},
    )
    try:
        t0 = time.perf_counter()
        with runtime.use_genome(g, module), pytest.raises(TimeoutError):
            fetch()
        elapsed = time.perf_counter() - t0
    finally:
        stop.set()
        t.join()
        server.close()
        for c in conns:
            c.close()
    assert len(budgets) == 2
    assert all(b is not None and 0 < b <= 0.2 for b in budgets)
    assert elapsed > 0.35  # each attempt's socket really waited for its budget
    assert current_timeout() is None


def test_sync_call_that_ignores_its_budget_is_discarded_as_timeout(module: str) -> None:
    f = antifragile(module)(lambda: time.sleep(0.1) or "late")
    with (
        runtime.use_genome(genome(module, timeout={"seconds": 0.02}), module),
        pytest.raises(AttemptTimeout),
    ):
        f()
    assert runtime.counters(module)["timeouts"] == 1


def test_timeouts_count_as_breaker_failures(module: str) -> None:
    f = antifragile(module)(lambda: time.sleep(0.03))
    g = genome(
        module,
        timeout={"seconds": 0.01},
        circuit_breaker={"failure_threshold": 2, "reset_timeout": 60},
    )
    with runtime.use_genome(g, module):
        for _ in range(2):
            with pytest.raises(AttemptTimeout):
                f()
        with pytest.raises(CircuitOpenError):
            f()


def test_async_timeout_cancels_and_retries(module: str) -> None:
    attempts: list[float | None] = []

    @antifragile(module)
    async def slow() -> str:
        attempts.append(current_timeout())
        if len(attempts) < 3:
            await asyncio.sleep(5)
        return "fast"

    g = genome(module, timeout={"seconds": 0.05}, retry={"max_attempts": 3, "base_delay": 0.0})

    async def main() -> tuple[str, float]:
        t0 = time.perf_counter()
        with runtime.use_genome(g, module):
            out = await slow()
        return out, time.perf_counter() - t0

    out, elapsed = asyncio.run(main())
    assert out == "fast"
    # The two 5 s sleeps were cancelled at their deadline: otherwise the first attempt
    # would have returned after its sleep, with no timeout and no retry.
    assert len(attempts) == 3
    assert elapsed > 0.1
    assert runtime.counters(module)["timeouts"] == 2
    assert all(a is not None and a <= 0.05 for a in attempts)


def test_async_external_cancel_and_own_timeout_error_pass_through(module: str) -> None:
    @antifragile(module)
    async def hang() -> None:
        await asyncio.sleep(5)

    @antifragile(module)
    async def raises_timeout() -> None:
        raise TimeoutError("the call's own")

    g = genome(module, timeout={"seconds": 1.0})

    async def main() -> None:
        with runtime.use_genome(g, module):
            task = asyncio.ensure_future(hang())
            await asyncio.sleep(0.01)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            with pytest.raises(TimeoutError, match="the call's own"):
                await raises_timeout()

    asyncio.run(main())
    assert runtime.counters(module)["timeouts"] == 0


def test_async_retry_fallback_callable_and_cache(module: str) -> None:
    flaky = Flaky(10)

    @antifragile(module)
    async def get(x: int) -> int:
        return flaky(x)

    g = genome(
        module, retry={"max_attempts": 2, "base_delay": 0.0}, fallback={"callable": "operator:neg"}
    )
    with runtime.use_genome(g, module):
        assert asyncio.run(get(4)) == -4
    assert flaky.calls == 2


def test_fallback_only_on_listed_errors(module: str) -> None:
    f = antifragile(module)(Flaky(1, KeyError))
    g = genome(module, fallback={"value": 0, "on": ["ConnectionError"]})
    with runtime.use_genome(g, module), pytest.raises(KeyError):
        f()


def test_cache_hits_expire_and_skip_fallbacks(module: str) -> None:
    calls = {"n": 0}

    @antifragile(module)
    def lookup(key: str, opts: Any = None) -> int:
        calls["n"] += 1
        if key == "bad":
            raise ConnectionError
        return len(key)

    g = genome(module, cache={"ttl": 0.2, "max_size": 2}, fallback={"value": -1})
    clock = FakeClock()
    with runtime.use_genome(g, module):
        runtime.slot(module).load().cache.clock = clock  # type: ignore[union-attr]
        assert lookup("abc") == 3
        assert lookup("abc") == 3
        assert calls["n"] == 1
        assert runtime.counters(module)["cache_hits"] == 1
        assert lookup("bad") == -1
        assert lookup("bad") == -1
        assert calls["n"] == 3  # fallback values are not cached
        assert lookup("x", opts=[1]) == 1
        assert lookup("x", opts=[1]) == 1
        assert calls["n"] == 5
        clock.advance(0.25)  # past the ttl
        assert lookup("abc") == 3
        assert calls["n"] == 6


def test_bulkhead_rejects_beyond_capacity(module: str) -> None:
    inside, release = threading.Event(), threading.Event()

    @antifragile(module)
    def work() -> str:
        inside.set()
        release.wait(5)
        return "done"

    g = genome(module, bulkhead={"max_concurrent": 1, "max_queue": 0})
    results: list[str] = []
    with runtime.use_genome(g, module):
        t = threading.Thread(target=lambda: results.append(work()))
        t.start()
        assert inside.wait(5)
        with pytest.raises(BulkheadFull):
            work()
        release.set()
        t.join()
        assert work() == "done"
    assert results == ["done"]


def test_rate_limit(module: str) -> None:
    f = antifragile(module)(lambda: 1)
    g = genome(module, rate_limit={"rate": 0.5, "burst": 2, "max_wait": 0.0})
    with runtime.use_genome(g, module):
        assert f() + f() == 2
        with pytest.raises(RateLimitExceeded):
            f()
    g2 = genome(module, rate_limit={"rate": 20.0, "burst": 1, "max_wait": 1.0})
    with runtime.use_genome(g2, module):
        t0 = time.perf_counter()
        f()
        f()  # waits ~50 ms for a token instead of failing
        assert time.perf_counter() - t0 >= 0.03


def test_bad_exception_name_is_one_line_error(module: str) -> None:
    from pytest_rafael.genome.genes import GenomeError

    g = genome(module, retry={"on": ["no_such_mod.Err"]})
    with (
        pytest.raises(GenomeError, match=r"genes.retry.on: cannot import 'no_such_mod.Err'"),
        runtime.use_genome(g, module),
    ):
        pass
