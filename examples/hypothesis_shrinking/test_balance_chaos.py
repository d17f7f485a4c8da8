"""Property: under any fault schedule, a balance read is exact or an honest error.

Run it with ``pytest examples/hypothesis_shrinking``. It fails, on purpose: Hypothesis
finds that a slow reply that also arrives in pieces makes ``BalanceClient`` parse half
a line, and shrinks the schedule to those two faults, e.g.::

    Fault schedule (2 faults):
      1. latency on 'db' (downstream): latency=125ms, for the whole block
      2. limit_data on 'db' (downstream): bytes=1B, for the whole block

The schedule is stored under ``.rafael/failures/``; ``rafael scenarios from-failure
--latest --out scenarios/ledger_truncation.yaml`` turns it into a scenario file that
``@pytest.mark.chaos("...")`` replays.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from ledger import BALANCES, BalanceClient, LedgerUnavailable

from pytest_rafael.faults.network import ProxyHandle
from pytest_rafael.scenario.schedules import FaultSchedule
from pytest_rafael.strategies import fault_schedules

# Bounds that fit this service: replies are ~20 bytes, so sizes up to 32 bytes are the
# interesting ones; slower than the client's 300 ms timeout is just a timeout; slicer
# pieces at least 2 ms apart (a reader late by more than the gap sees several pieces at
# once, which would make the failure depend on thread scheduling). One call per example:
# a fault must be there for the whole call, so no start offsets or durations.
SCHEDULES = fault_schedules(
    targets=["db"],
    bounds={
        "latency": {"latency": (0, 300)},
        "limit_data": {"bytes": (0, 32)},
        "slicer": {"average_size": (1, 32), "delay": (2_000, 5_000)},
    },
    max_start_s=0,
    max_duration_s=0,
)


# A combination bug sits in a small corner of the schedule space: give it more examples
# than the profile's default (measured: 200 found it in 10 fresh runs of 10, 12-23 s each
# with the shrink; 500 leave a margin, and a run stops at the first failure).
@settings(max_examples=500)
@given(schedule=SCHEDULES)
def test_balance_is_exact_or_unavailable(
    schedule: FaultSchedule, db: ProxyHandle, chaos: Any
) -> None:
    client = BalanceClient(db.host, db.port)
    with chaos.apply(schedule):  # every fault is reverted when the block ends
        try:
            balance = client.balance("alice")
        except LedgerUnavailable:
            return  # failing loudly under chaos is allowed; lying is not
        assert balance == BALANCES["alice"]
