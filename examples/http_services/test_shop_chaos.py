"""Chaos tests of a shop service that calls an inventory service over HTTP.

The inventory is reached through a chaos proxy named ``inventory``; the scenarios target
every proxy (``*``), so they hit exactly that link. Without ``--rafael-chaos`` the tests
pass; under chaos the shipped genome (no retry, 30 s timeout) loses requests to reset
connections, and evolution searches for genes that keep the order pages up.
"""

from __future__ import annotations

import time

import pytest
from services import InventoryClient, Service, get_json, inventory_route, shop_route


@pytest.fixture
def shop(chaos_proxy):
    with Service(inventory_route) as inventory:
        link = chaos_proxy("inventory", inventory.address)
        with Service(shop_route(InventoryClient(link.listen))) as shop:
            yield shop


@pytest.mark.chaos("flaky_network", "network_latency", module="inventory")
def test_order_pages_stay_up(shop, chaos):
    started = time.monotonic()
    latencies = []
    for sku, available in [("sku-1", True), ("sku-2", False), ("sku-3", True)] * 3:
        t0 = time.monotonic()
        status, body = get_json(shop.address, f"/order/{sku}", timeout=10)
        latencies.append(time.monotonic() - t0)
        assert status == 200, body
        assert body == {"sku": sku, "available": available}
    chaos.record(
        workload_s=round(time.monotonic() - started, 3),
        p_max_ms=round(max(latencies) * 1000, 1),
        budget_s=5.0,
    )


def test_unknown_sku_is_a_404(shop):
    status, body = get_json(shop.address, "/order/sku-404", timeout=10)
    assert status == 404
    assert "unknown sku" in body["error"]
