"""Stateful chaos: operations of the counter client interleaved with faults on "db".

Run ``pytest examples/stateful_chaos``: it fails on purpose, with a minimal sequence
such as ``inject latency on 'db'`` then ``incr()``, stored under ``.rafael/failures``
(replay with ``rafael scenarios from-failure --latest``).
"""

from __future__ import annotations

from counter import CounterClient, CounterServer, CounterUnavailable
from hypothesis import settings
from hypothesis.stateful import invariant, rule

from pytest_rafael.faults.network import ProxyHandle
from pytest_rafael.strategies import ChaosStateMachine


class CounterMachine(ChaosStateMachine):
    proxies = ("db",)
    toxics = ("latency", "reset_peer", "limit_data")  # the faults worth interleaving
    # The bug is a slow *reply* (the server has counted). A slow request counts later, in
    # some later step, and a delay just past the client's 0.2 s timeout races it on a busy
    # machine: either would make the failure depend on the clock, and shrinking with it.
    streams = ("downstream",)
    bounds = {"latency": {"latency": (300, 600)}, "limit_data": {"bytes": (0, 16)}}
    server: CounterServer  # set by the test

    def __init__(self) -> None:
        super().__init__()
        db = self.proxy("db")
        self.client = CounterClient(db.host, db.port)
        self.start = self.server.count
        self.low = self.high = 0  # views counted: at least low, at most high

    @rule()
    def incr(self) -> None:
        try:
            self.client.incr()
        except CounterUnavailable:
            self.high += 1  # may or may not have been counted: honest uncertainty
            return
        self.low += 1
        self.high += 1

    @invariant()
    def never_counts_a_view_twice(self) -> None:
        counted = self.server.count - self.start
        assert self.low <= counted <= self.high, (
            f"{counted} views counted for between {self.low} and {self.high} visits"
        )


def test_counter_under_stateful_chaos(
    chaos: object, db: ProxyHandle, counter: CounterServer
) -> None:
    CounterMachine.server = counter
    CounterMachine.run(chaos, settings=settings(max_examples=60, stateful_step_count=8))
