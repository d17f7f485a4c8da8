"""A flood shows what a rate limiter is worth.

Both tests call the price service ten times as the client ``app`` and expect each answer
within 0.75 s. Without ``--rafael-chaos`` both pass. Under the ``request_flood``
scenario (``pytest examples/rate_limited_service --rafael-chaos``) the service without a
limiter queues the flood in front of its two workers and ``app`` times out; with the
limiter the flood gets ``429`` at once and ``app`` keeps its latency. The iteration
records what the flood achieved (rate, statuses, latency percentiles) in results.json.
"""

from __future__ import annotations

import http.client
import time

import pytest
from service import PriceService, RateLimiter


def _ask_prices(address: str, times: int = 10) -> float:
    host, port = address.rsplit(":", 1)
    slowest = 0.0
    for _ in range(times):
        started = time.monotonic()
        conn = http.client.HTTPConnection(host, int(port), timeout=0.75)
        try:
            conn.request("GET", "/price", headers={"X-Client": "app"})
            response = conn.getresponse()
            assert response.status == 200, response.status
            response.read()
        finally:
            conn.close()
        slowest = max(slowest, time.monotonic() - started)
    return slowest


@pytest.mark.chaos("request_flood")
def test_prices_with_a_rate_limiter(chaos_proxy, chaos):
    with PriceService(RateLimiter(rate=5, burst=10)) as service:
        api = chaos_proxy("api", service.address)
        slowest = _ask_prices(api.listen)
        chaos.record(slowest_ms=round(slowest * 1000, 1), rejected=service.rejected)


@pytest.mark.chaos("request_flood")
def test_prices_without_a_rate_limiter(chaos_proxy, chaos):
    with PriceService(None) as service:
        api = chaos_proxy("api", service.address)
        slowest = _ask_prices(api.listen)
        chaos.record(slowest_ms=round(slowest * 1000, 1))
