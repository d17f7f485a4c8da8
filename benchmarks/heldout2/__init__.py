"""A second held-out corpus of planted resilience bugs.

These ten bugs were written apart from the fault-drawing strategy, by someone who did not
read it, and they were never used to tune it: hunting them estimates how well the strategy
generalizes to bugs it was not shaped to find. Each module follows the format of
``benchmarks.bugs`` (``DESCRIPTION``, ``MINIMAL``, ``System``, ``test_chaos``) and uses its
kit; load them with ``benchmarks.bugs.load(name, "benchmarks.heldout2")``.
"""

from __future__ import annotations

BUG_NAMES = (
    "backoff_reset_on_handshake",
    "idempotency_key_per_attempt",
    "long_poll_no_timeout",
    "deadline_not_shared",
    "breaker_rejections_reopen",
    "pool_returns_failed_conn",
    "body_single_recv",
    "cart_read_fallback_empty",
    "shipper_unbounded_queue",
    "replica_timeout_as_miss",
)
