"""A held-out corpus of planted resilience bugs, written apart from the fault-drawing
strategy and never used to tune it.

The modules share the kit of ``benchmarks.bugs`` (``_kit``) and its format: a one-line
``DESCRIPTION``, the ``MINIMAL`` fault schedule that triggers the bug and a ``System``
whose ``check`` fails only because of the planted bug. They were designed without
looking at the strategies or at the results of the tuned corpus, so how often a hunt
finds them is an honest estimate of how the strategy generalizes to unseen bugs.
Load them with ``benchmarks.bugs.load(name, "benchmarks.heldout")``.
"""

from __future__ import annotations

BUG_NAMES = (
    "double_charge_retry",
    "upload_no_timeout",
    "fixed_timeouts_over_budget",
    "breaker_cooldown_refresh",
    "expiry_stampede",
    "single_recv_reply",
    "pool_recycles_broken",
    "spool_drops_acked_writes",
    "layered_retry_storm",
    "publish_before_commit",
)
