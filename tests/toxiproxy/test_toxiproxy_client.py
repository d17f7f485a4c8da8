"""toxiproxy-python, the client the plugin uses, driving every endpoint it has."""

from __future__ import annotations

import socket

import pytest
from toxiproxy import Toxiproxy  # type: ignore[import-untyped]
from toxiproxy.exceptions import InvalidToxic, NotFound, ProxyExists  # type: ignore[import-untyped]
from toxiproxy_helpers import Upstream, connect, recv_exactly

from pytest_rafael.toxiproxy import EmbeddedServer


@pytest.fixture
def client(server: EmbeddedServer) -> Toxiproxy:
    toxiproxy = Toxiproxy()
    # toxiproxy-python keeps host and port on the class: point it at this server.
    toxiproxy.update_api_consumer(server.host, server.port)
    return toxiproxy


def test_server_is_running_and_reports_a_2x_version(client: Toxiproxy) -> None:
    assert client.running()
    assert b'"version": "2.' in client.version()


def test_create_list_get_and_destroy(client: Toxiproxy, echo: Upstream) -> None:
    proxy = client.create(upstream=echo.address, name="db")
    assert proxy.enabled is True
    host, port = proxy.listen.rsplit(":", 1)
    assert host == "127.0.0.1"
    assert int(port) > 0  # port 0 reports the real port
    assert set(client.proxies()) == {"db"}
    assert client.get_proxy("db").upstream == echo.address
    with pytest.raises(ProxyExists):
        client.create(upstream=echo.address, name="db")
    assert client.destroy(proxy) is True
    assert client.get_proxy("db") is None
    with pytest.raises(NotFound):
        proxy.destroy()


def test_traffic_flows_through_a_created_proxy(client: Toxiproxy, echo: Upstream) -> None:
    proxy = client.create(upstream=echo.address, name="echo")
    with connect(proxy.listen) as sock:
        sock.sendall(b"ping")
        assert recv_exactly(sock, 4) == b"ping"


def test_toxics_add_list_get_destroy(client: Toxiproxy, echo: Upstream) -> None:
    proxy = client.create(upstream=echo.address, name="svc")
    proxy.add_toxic(type="latency", attributes={"latency": 50, "jitter": 5})
    proxy.add_toxic(
        type="bandwidth", stream="upstream", name="slow_up", toxicity=0.5, attributes={"rate": 100}
    )
    toxics = proxy.toxics()
    assert set(toxics) == {"latency_downstream", "slow_up"}
    latency = proxy.get_toxic("latency_downstream")
    assert latency.type == "latency"
    assert latency.stream == "downstream"
    assert latency.toxicity == 1
    assert latency.attributes == {"latency": 50, "jitter": 5}
    assert toxics["slow_up"].toxicity == 0.5
    assert toxics["slow_up"].attributes == {"rate": 100}
    with pytest.raises(ProxyExists):
        proxy.add_toxic(type="latency", attributes={"latency": 1})
    with pytest.raises(InvalidToxic):
        proxy.add_toxic(type="no_such_toxic")
    assert proxy.destroy_toxic("slow_up") is True
    assert set(proxy.toxics()) == {"latency_downstream"}
    with pytest.raises(NotFound):
        proxy.destroy_toxic("slow_up")


def test_disable_drops_connections_and_stops_listening(client: Toxiproxy, echo: Upstream) -> None:
    proxy = client.create(upstream=echo.address, name="flaky")
    sock = connect(proxy.listen)
    with sock:
        sock.sendall(b"a")
        assert recv_exactly(sock, 1) == b"a"
        with proxy.down():
            assert client.get_proxy("flaky").enabled is False
            sock.settimeout(5)
            assert sock.recv(10) == b""  # the open connection was dropped
            with pytest.raises(ConnectionRefusedError):
                connect(proxy.listen).close()
    assert client.get_proxy("flaky").enabled is True
    with connect(proxy.listen) as again:  # listening again on the same port
        again.sendall(b"b")
        assert recv_exactly(again, 1) == b"b"


def test_reset_enables_proxies_and_removes_toxics(client: Toxiproxy, echo: Upstream) -> None:
    proxy = client.create(upstream=echo.address, name="r")
    proxy.add_toxic(type="timeout", attributes={"timeout": 0})
    proxy.disable()
    assert client.reset() is True
    restored = client.get_proxy("r")
    assert restored.enabled is True
    assert restored.toxics() == {}


def test_client_populate_and_destroy_all(client: Toxiproxy, echo: Upstream) -> None:
    created = client.populate(
        [
            {"name": "a", "upstream": echo.address, "listen": "127.0.0.1:0"},
            {"name": "b", "upstream": echo.address, "listen": "127.0.0.1:0"},
        ]
    )
    assert sorted(p.name for p in created) == ["a", "b"]
    client.destroy_all()
    assert client.proxies() == {}


def test_disabled_proxy_can_be_created(client: Toxiproxy, echo: Upstream) -> None:
    probe = socket.create_server(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    proxy = client.create(
        upstream=echo.address, name="off", listen=f"127.0.0.1:{port}", enabled=False
    )
    assert proxy.enabled is False
    with pytest.raises(ConnectionRefusedError):
        connect(proxy.listen).close()
    proxy.enable()
    with connect(f"127.0.0.1:{port}") as sock:
        sock.sendall(b"z")
        assert recv_exactly(sock, 1) == b"z"
