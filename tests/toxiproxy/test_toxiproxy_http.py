"""Raw HTTP: status codes, JSON shapes and error bodies as Toxiproxy 2.x gives them."""

from __future__ import annotations

import contextlib
import json
import socket
from typing import Any

import pytest
import requests
from toxiproxy_helpers import Upstream, connect, recv_exactly

from pytest_rafael.toxiproxy import EmbeddedServer


def api(server: EmbeddedServer, method: str, path: str, **kwargs: Any) -> requests.Response:
    return requests.request(method, server.url + path, timeout=10, **kwargs)


def make_proxy(server: EmbeddedServer, upstream: str, name: str = "p") -> dict[str, Any]:
    response = api(
        server,
        "POST",
        "/proxies",
        json={"name": name, "upstream": upstream, "listen": "127.0.0.1:0"},
    )
    assert response.status_code == 201
    return response.json()  # type: ignore[no-any-return]


def assert_error(response: requests.Response, status: int, message: str) -> None:
    assert response.status_code == status
    body = response.json()
    assert body["status"] == status
    assert body["error"].startswith(message), body


def test_proxy_json_shape(server: EmbeddedServer, echo: Upstream) -> None:
    created = make_proxy(server, echo.address)
    # Toxiproxy 2.12 also marshals its (empty) Logger field.
    assert set(created) == {"name", "listen", "upstream", "enabled", "Logger", "toxics"}
    assert created["toxics"] == []
    assert created["enabled"] is True
    assert api(server, "GET", "/proxies").json() == {"p": created}
    assert api(server, "GET", "/proxies/p").json() == created


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"upstream": "127.0.0.1:1"}, 400, "missing required field: name"),
        ({"name": "x"}, 400, "missing required field: upstream"),
        ({"name": 5, "upstream": "127.0.0.1:1"}, 400, "bad request body"),
        ([1, 2], 400, "bad request body"),
    ],
)
def test_create_proxy_validation(
    server: EmbeddedServer, body: object, status: int, message: str
) -> None:
    assert_error(api(server, "POST", "/proxies", json=body), status, message)


def test_bad_json_and_empty_body(server: EmbeddedServer) -> None:
    assert_error(api(server, "POST", "/proxies", data=b"{not json"), 400, "bad request body")
    assert_error(api(server, "POST", "/proxies", data=b""), 400, "bad request body")
    # NaN is not JSON (Python's decoder would take it; Toxiproxy's does not).
    nan = b'{"name": "n", "upstream": "127.0.0.1:1", "toxicity": NaN}'
    assert_error(api(server, "POST", "/proxies", data=nan), 400, "bad request body")


def test_duplicate_and_unknown_proxy(server: EmbeddedServer, echo: Upstream) -> None:
    make_proxy(server, echo.address)
    again = api(server, "POST", "/proxies", json={"name": "p", "upstream": echo.address})
    assert_error(again, 409, "proxy already exists")
    for method in ("GET", "DELETE"):
        assert_error(api(server, method, "/proxies/nope"), 404, "proxy not found")
    assert_error(api(server, "PATCH", "/proxies/nope", json={}), 404, "proxy not found")
    assert_error(api(server, "GET", "/proxies/nope/toxics"), 404, "proxy not found")
    assert api(server, "DELETE", "/proxies/p").status_code == 204
    assert api(server, "GET", "/proxies").json() == {}


def test_toxic_create_defaults_and_errors(server: EmbeddedServer, echo: Upstream) -> None:
    make_proxy(server, echo.address)
    created = api(server, "POST", "/proxies/p/toxics", json={"type": "latency"})
    assert created.status_code == 200
    assert created.json() == {
        "attributes": {"latency": 0, "jitter": 0},
        "name": "latency_downstream",
        "type": "latency",
        "stream": "downstream",
        "toxicity": 1,
    }
    assert_error(
        api(server, "POST", "/proxies/p/toxics", json={"type": "latency"}),
        409,
        "toxic already exists",
    )
    assert_error(
        api(server, "POST", "/proxies/p/toxics", json={"type": "bogus"}), 400, "invalid toxic type"
    )
    assert_error(
        api(server, "POST", "/proxies/p/toxics", json={"type": "latency", "stream": "sideways"}),
        400,
        "stream was invalid",
    )
    assert_error(
        api(
            server,
            "POST",
            "/proxies/p/toxics",
            json={"type": "bandwidth", "attributes": {"rate": "fast"}},
        ),
        400,
        "bad request body",
    )
    assert_error(api(server, "POST", "/proxies/p/toxics", data=b"[1"), 400, "bad request body")
    assert_error(api(server, "GET", "/proxies/p/toxics/nope"), 404, "toxic not found")
    assert_error(api(server, "DELETE", "/proxies/p/toxics/nope"), 404, "toxic not found")


def test_toxic_update_merges_attributes(server: EmbeddedServer, echo: Upstream) -> None:
    make_proxy(server, echo.address)
    api(
        server,
        "POST",
        "/proxies/p/toxics",
        json={
            "name": "lat",
            "type": "latency",
            "stream": "upstream",
            "attributes": {"latency": 10, "jitter": 2},
        },
    )
    for method in ("POST", "PATCH"):
        updated = api(
            server,
            method,
            "/proxies/p/toxics/lat",
            json={"attributes": {"latency": 30}, "toxicity": 0.25},
        )
        assert updated.status_code == 200
        assert updated.json()["attributes"] == {"latency": 30, "jitter": 2}
        assert updated.json()["toxicity"] == 0.25
    listed = api(server, "GET", "/proxies/p/toxics").json()
    assert [t["name"] for t in listed] == ["lat"]
    assert api(server, "GET", "/proxies/p").json()["toxics"] == listed
    assert api(server, "DELETE", "/proxies/p/toxics/lat").status_code == 204
    assert api(server, "GET", "/proxies/p/toxics").json() == []


def test_populate_creates_replaces_and_keeps(server: EmbeddedServer, echo: Upstream) -> None:
    body = [
        {"name": "a", "upstream": echo.address, "listen": "127.0.0.1:0"},
        {"name": "b", "upstream": echo.address, "listen": "127.0.0.1:0", "enabled": False},
    ]
    response = api(server, "POST", "/populate", json=body)
    assert response.status_code == 201
    proxies = response.json()["proxies"]
    assert [p["name"] for p in proxies] == ["a", "b"]
    assert [p["enabled"] for p in proxies] == [True, False]
    listen_a = proxies[0]["listen"]
    # Same listen and upstream: the existing proxy stays (same port, same toxics).
    api(server, "POST", "/proxies/a/toxics", json={"type": "latency"})
    again = api(
        server,
        "POST",
        "/populate",
        json=[{"name": "a", "upstream": echo.address, "listen": listen_a}],
    )
    assert again.json()["proxies"][0]["toxics"][0]["name"] == "latency_downstream"
    bad = api(server, "POST", "/populate", json=[{"name": "c"}])
    assert_error(bad, 400, "missing required field: upstream at proxy 1")
    assert "proxies" in bad.json()
    assert_error(api(server, "POST", "/populate", json={"name": "x"}), 400, "bad request body")
    assert "c" not in api(server, "GET", "/proxies").json()


def test_reset_version_and_routing(server: EmbeddedServer, echo: Upstream) -> None:
    make_proxy(server, echo.address)
    api(server, "POST", "/proxies/p/toxics", json={"type": "timeout"})
    api(server, "POST", "/proxies/p", json={"enabled": False})
    assert api(server, "POST", "/reset").status_code == 204
    proxy = api(server, "GET", "/proxies/p").json()
    assert proxy["enabled"] is True
    assert proxy["toxics"] == []
    version = api(server, "GET", "/version")
    assert version.status_code == 200
    assert version.json()["version"].startswith("2.")
    assert api(server, "GET", "/nothing").status_code == 404
    assert api(server, "PUT", "/proxies").status_code == 405
    browser = api(server, "GET", "/proxies", headers={"User-Agent": "Mozilla/5.0"})
    assert browser.status_code == 403


def test_changing_listen_restarts_the_proxy(server: EmbeddedServer, echo: Upstream) -> None:
    old = make_proxy(server, echo.address)["listen"]
    sock = connect(old)
    updated = api(server, "PATCH", "/proxies/p", json={"listen": "127.0.0.1:0"}).json()
    assert updated["listen"] != old
    assert updated["enabled"] is True
    with sock:
        assert sock.recv(10) == b""  # connections on the old listener were dropped
    with pytest.raises(ConnectionRefusedError):
        connect(old).close()
    with connect(updated["listen"]) as fresh:
        fresh.sendall(b"new")
        assert recv_exactly(fresh, 3) == b"new"


def test_changing_upstream_redirects_new_connections(
    server: EmbeddedServer, echo: Upstream
) -> None:
    other = Upstream(lambda conn: conn.sendall(b"other"))
    try:
        make_proxy(server, echo.address)
        listen = api(server, "POST", "/proxies/p", json={"upstream": other.address}).json()
        with connect(listen["listen"]) as sock:
            assert recv_exactly(sock, 5) == b"other"
    finally:
        other.close()


def test_deleting_a_proxy_closes_its_connections(server: EmbeddedServer, echo: Upstream) -> None:
    listen = make_proxy(server, echo.address)["listen"]
    socks = [connect(listen) for _ in range(5)]
    for sock in socks:
        sock.sendall(b"x")
        assert recv_exactly(sock, 1) == b"x"
    assert api(server, "DELETE", "/proxies/p").status_code == 204
    for sock in socks:
        with sock:
            assert sock.recv(10) == b""


def test_metrics_count_bytes_and_connections(server: EmbeddedServer, echo: Upstream) -> None:
    listen = make_proxy(server, echo.address)["listen"]
    with connect(listen) as sock:
        sock.sendall(b"x" * 1000)
        assert len(recv_exactly(sock, 1000)) == 1000
    text = api(server, "GET", "/metrics").text
    lines = dict(line.rsplit(" ", 1) for line in text.splitlines() if not line.startswith("#"))
    key = f'direction="upstream",listener="{listen}",proxy="p",upstream="{echo.address}"'
    assert lines[f"toxiproxy_proxy_sent_bytes_total{{{key}}}"] == "1000"
    down = key.replace('"upstream",listener', '"downstream",listener')
    assert lines[f"toxiproxy_proxy_received_bytes_total{{{down}}}"] == "1000"
    conn_key = f'listener="{listen}",proxy="p",upstream="{echo.address}"'
    assert lines[f"toxiproxy_proxy_connections_total{{{conn_key}}}"] == "1"


MALFORMED = [
    b"\x00\xff garbage\r\n\r\n",
    b"GET\r\n\r\n",
    b"GET / HTTP/9.9\r\n\r\n",
    b"POST /proxies HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n{",
    b"POST /proxies HTTP/1.1\r\nContent-Length: abc\r\n\r\n{}",
    b"POST /proxies HTTP/1.1\r\nContent-Length: -5\r\n\r\n{}",
    b"POST /proxies HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
    b'POST /proxies HTTP/1.1\r\nContent-Length: 10\r\n\r\n{"na',  # body cut short
    b"GET /proxies HTTP/1.1\r\nX: " + b"a" * 70000 + b"\r\n\r\n",
    b"POST /proxies/%ff%fe/toxics HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}",
]


@pytest.mark.parametrize("garbage", MALFORMED)
def test_malformed_http_never_kills_the_server(server: EmbeddedServer, garbage: bytes) -> None:
    with socket.create_connection((server.host, server.port), timeout=5) as sock:
        sock.sendall(garbage)
        sock.shutdown(socket.SHUT_WR)
        with contextlib.suppress(ConnectionResetError):
            sock.recv(4096)
    assert api(server, "GET", "/version").status_code == 200


def test_chunked_request_body_is_read(server: EmbeddedServer, echo: Upstream) -> None:
    body = json.dumps({"name": "c", "upstream": echo.address}).encode()
    response = api(server, "POST", "/proxies", data=iter([body[:10], body[10:]]))
    assert response.status_code == 201
    assert response.json()["name"] == "c"


def test_listen_on_a_busy_port_is_an_error(server: EmbeddedServer, echo: Upstream) -> None:
    busy = api(
        server,
        "POST",
        "/proxies",
        json={"name": "clash", "upstream": echo.address, "listen": echo.address},
    )
    assert busy.status_code == 500
    assert "listen tcp" in busy.json()["error"]
    assert api(server, "GET", "/proxies").json() == {}
