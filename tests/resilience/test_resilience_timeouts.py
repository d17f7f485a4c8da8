"""current_timeout() on a ContextVar, and the async watchdog: re-arming for the next
deadline, and undoing its own cancellation so enclosing timeouts are not confused."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from typing import Any

import pytest

from pytest_rafael.genome.genome import Genome
from pytest_rafael.resilience import AttemptTimeout, antifragile, current_timeout, runtime
from pytest_rafael.resilience.watchdog import _Watchdog

_n = 0


@pytest.fixture
def module(request: pytest.FixtureRequest) -> str:
    global _n
    _n += 1
    name = f"t{_n}_{request.node.name[:20]}"
    runtime.reset_counters(name)
    return name


def genome(module: str, **genes: dict[str, Any]) -> Genome:
    return Genome.from_dict(module, {"genes": genes, "idempotent": True})


def test_budget_inside_the_attempt_only(module: str) -> None:
    seen: list[float | None] = []
    f = antifragile(module)(lambda: seen.append(current_timeout()))
    with runtime.use_genome(genome(module, timeout={"seconds": 30.0}), module):
        f()
        assert current_timeout() is None
    assert seen[0] is not None
    assert 0 < seen[0] <= 30.0


def test_nested_attempts_give_the_earliest_deadline(module: str) -> None:
    inner_module = f"{module}_inner"
    runtime.reset_counters(inner_module)
    seen: dict[str, float | None] = {}

    @antifragile(inner_module)
    def inner() -> None:
        seen["inner"] = current_timeout()

    @antifragile(module)
    def outer() -> None:
        seen["outer"] = current_timeout()
        inner()
        seen["after_inner"] = current_timeout()

    with (
        runtime.use_genome(genome(module, timeout={"seconds": 2.0}), module),
        runtime.use_genome(genome(inner_module, timeout={"seconds": 600.0}), inner_module),
    ):
        outer()
    assert seen["inner"] is not None
    assert seen["inner"] <= 2.0  # the outer attempt's budget bounds the inner one
    assert seen["after_inner"] is not None  # the inner attempt restored the outer's
    assert seen["after_inner"] <= 2.0


def test_an_untimed_inner_call_still_sees_the_outer_budget(module: str) -> None:
    inner_module = f"{module}_bare"
    seen: list[float | None] = []
    inner = antifragile(inner_module)(lambda: seen.append(current_timeout()))
    outer = antifragile(module)(lambda: inner())
    with runtime.use_genome(genome(module, timeout={"seconds": 5.0}), module):
        outer()
    assert seen[0] is not None
    assert seen[0] <= 5.0


def test_the_budget_follows_coroutines_and_to_thread(module: str) -> None:
    seen: list[float | None] = []

    @antifragile(module)
    async def call() -> None:
        seen.append(current_timeout())
        seen.append(await asyncio.to_thread(current_timeout))

    async def main() -> None:
        await call()
        seen.append(current_timeout())

    with runtime.use_genome(genome(module, timeout={"seconds": 30.0}), module):
        asyncio.run(main())
    first, in_thread, after = seen
    assert first is not None
    assert in_thread is not None
    assert in_thread <= 30.0
    assert after is None


def test_concurrent_tasks_each_see_their_own_budget(module: str) -> None:
    other = f"{module}_b"
    runtime.reset_counters(other)
    seen: dict[str, float | None] = {}
    both_inside = asyncio.Event

    async def main() -> None:
        gate = both_inside()
        entered = 0

        async def body(name: str) -> None:
            nonlocal entered
            entered += 1
            if entered == 2:
                gate.set()
            await gate.wait()  # both attempts are running at once
            seen[name] = current_timeout()

        @antifragile(module)
        async def a() -> None:
            await body("a")

        @antifragile(other)
        async def b() -> None:
            await body("b")

        await asyncio.gather(a(), b())

    with (
        runtime.use_genome(genome(module, timeout={"seconds": 1.0}), module),
        runtime.use_genome(genome(other, timeout={"seconds": 600.0}), other),
    ):
        asyncio.run(main())
    assert seen["a"] is not None
    assert seen["b"] is not None
    assert seen["a"] <= 1.0 < seen["b"]


class _FakeLoop:
    """Records call_at; its clock is moved by hand."""

    def __init__(self) -> None:
        self.now = 100.0
        self.armed: list[float] = []

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[[], None]) -> Any:
        self.armed.append(when)
        return asyncio.Handle(lambda: None, (), asyncio.new_event_loop())


class _Task:
    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


def test_watchdog_fires_only_due_entries_and_rearms_for_the_next() -> None:
    loop = _FakeLoop()
    wd = _Watchdog(loop)  # type: ignore[arg-type]
    early, late, done = _Task(), _Task(), _Task()
    entries = [[101.0, early, False], [105.0, late, False], [None, done, False]]
    for entry in entries:
        wd.entries.append(entry)
    wd.arm(105.0)
    wd.arm(101.0)  # an earlier deadline moves the timer
    assert loop.armed == [105.0, 101.0]
    loop.now = 101.5
    wd._fire()
    assert early.cancelled
    assert entries[0][2] is True  # marked as the watchdog's own cancellation
    assert not late.cancelled
    assert not done.cancelled  # a finished attempt is dropped, not cancelled
    assert loop.armed[-1] == 105.0  # re-armed for the remaining deadline
    assert wd.entries == [entries[1]]
    loop.now = 106.0
    wd._fire()
    assert late.cancelled
    assert wd.entries == []
    assert wd.handle is None
    assert loop.armed[-1] == 105.0  # nothing left: not re-armed


def test_two_timeouts_in_one_loop_both_fire_in_deadline_order(module: str) -> None:
    other = f"{module}_late"
    runtime.reset_counters(other)
    order: list[str] = []

    async def hang(name: str) -> None:
        try:
            await asyncio.sleep(60)
        finally:
            order.append(name)

    @antifragile(other)
    async def slow() -> None:
        await hang("late")

    @antifragile(module)
    async def fast() -> None:
        await hang("early")

    async def main() -> list[BaseException | None]:
        # The later deadline is armed first; the earlier one must move the timer, and
        # firing it must re-arm for the later one.
        results = await asyncio.gather(slow(), fast(), return_exceptions=True)
        return list(results)

    with (
        runtime.use_genome(genome(other, timeout={"seconds": 0.6}), other),
        runtime.use_genome(genome(module, timeout={"seconds": 0.05}), module),
    ):
        results = asyncio.run(main())
    assert all(isinstance(r, AttemptTimeout) for r in results), results
    assert order == ["early", "late"]


@pytest.mark.skipif(sys.version_info < (3, 11), reason="Task.uncancel() is 3.11+")
def test_own_timeout_is_uncancelled_for_an_enclosing_timeout(module: str) -> None:
    @antifragile(module)
    async def hang() -> None:
        await asyncio.sleep(60)

    async def main() -> int:
        async with asyncio.timeout(60):  # must not mistake our cancel for its own
            with pytest.raises(AttemptTimeout):
                await hang()
            task = asyncio.current_task()
            assert task is not None
            return task.cancelling()

    with runtime.use_genome(genome(module, timeout={"seconds": 0.05}), module):
        assert asyncio.run(main()) == 0


def test_a_cancel_from_outside_is_not_swallowed(module: str) -> None:
    started = asyncio.Event

    async def main() -> None:
        inside = started()

        @antifragile(module)
        async def hang() -> None:
            inside.set()
            await asyncio.sleep(60)

        task = asyncio.ensure_future(hang())
        await inside.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    g = genome(module, timeout={"seconds": 30.0}, retry={"max_attempts": 3, "base_delay": 0})
    with runtime.use_genome(g, module):
        asyncio.run(main())
    assert runtime.counters(module)["timeouts"] == 0
