"""Byte-for-byte parity with Toxiproxy 2.12 on the cases where the embedded server used to
differ: populate/PATCH with an unchanged (resolved) address, PATCH with a bad address,
the port-in-use text, a populate that fails part-way, and duplicate names in a populate.

The expected status lines, content types and bodies are the ones a Toxiproxy 2.12 server
answered to the same requests (see benchmarks/RESULTS.md, "API parity").
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from toxiproxy_helpers import Upstream, connect, recv_exactly

from pytest_rafael.toxiproxy import EmbeddedServer
from pytest_rafael.toxiproxy.address import AddressError, resolve

TEXT = "text/plain; charset=utf-8"
JSON = "application/json"


_NO_BODY = object()


def call(server: EmbeddedServer, method: str, path: str, body: Any = _NO_BODY) -> requests.Response:
    data = None if body is _NO_BODY else json.dumps(body)
    return requests.request(method, server.url + path, data=data, timeout=10)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def held_port() -> Iterator[int]:
    """A loopback port something else listens on."""
    with socket.create_server(("127.0.0.1", 0)) as sock:
        yield int(sock.getsockname()[1])


def proxy_json(name: str, listen: str, upstream: str, enabled: bool, toxics: str = "[]") -> str:
    flag = "true" if enabled else "false"
    return (
        f'{{"name":"{name}","listen":"{listen}","upstream":"{upstream}","enabled":{flag},'
        f'"Logger":{{}},"toxics":{toxics}}}'
    )


LATENCY = (
    '[{"attributes":{"latency":10,"jitter":0},"name":"latency_downstream",'
    '"type":"latency","stream":"downstream","toxicity":1}]'
)


def assert_answer(response: requests.Response, status: int, kind: str, body: str) -> None:
    assert (response.status_code, response.headers["Content-Type"]) == (status, kind)
    assert response.text == body


def echo_once(sock: socket.socket, payload: bytes = b"ping") -> None:
    sock.sendall(payload)
    assert recv_exactly(sock, len(payload)) == payload


def test_same_address_by_another_name_keeps_the_proxy(
    server: EmbeddedServer, echo: Upstream
) -> None:
    """Point 6: "localhost:PORT" is the proxy's 127.0.0.1:PORT, so neither populate nor
    PATCH replaces it: the toxic and the open connection survive."""
    port = free_port()
    listen = f"127.0.0.1:{port}"
    body = {"name": "p", "listen": listen, "upstream": echo.address}
    assert call(server, "POST", "/proxies", body).status_code == 201
    toxic = {"type": "latency", "attributes": {"latency": 10}}
    assert call(server, "POST", "/proxies/p/toxics", toxic).status_code == 200
    with connect(listen) as sock:
        echo_once(sock)
        again = [{"name": "p", "listen": f"localhost:{port}", "upstream": echo.address}]
        expected = proxy_json("p", listen, echo.address, True, LATENCY)
        populated = call(server, "POST", "/populate", again)
        assert_answer(populated, 201, JSON, f'{{"proxies":[{expected}]}}')
        patched = call(server, "PATCH", "/proxies/p", {"listen": f"localhost:{port}"})
        assert_answer(patched, 200, JSON, expected)
        echo_once(sock)  # the same connection still carries data


def test_patch_with_a_bad_listen_changes_nothing(server: EmbeddedServer, echo: Upstream) -> None:
    """Point 7: the address is checked before the proxy stops; 500 in Go's words."""
    port = free_port()
    listen = f"127.0.0.1:{port}"
    call(server, "POST", "/proxies", {"name": "p", "listen": listen, "upstream": echo.address})
    with connect(listen) as sock:
        bad = call(server, "PATCH", "/proxies/p", {"listen": "127.0.0.1:99999"})
        assert_answer(bad, 500, TEXT, '{"error":"address 99999: invalid port","status":500}\n')
        unknown = call(server, "PATCH", "/proxies/p", {"listen": "nosuch.invalid:80"})
        assert unknown.status_code == 500
        assert unknown.json()["error"].startswith("lookup nosuch.invalid")
        assert unknown.json()["error"].endswith("no such host")
        echo_once(sock)
    shown = call(server, "GET", "/proxies/p")
    assert_answer(shown, 200, JSON, proxy_json("p", listen, echo.address, True))
    assert call(server, "POST", "/reset").status_code == 204


def test_port_in_use_is_worded_as_go_does(
    server: EmbeddedServer, echo: Upstream, held_port: int
) -> None:
    """Point 8: the resolved address, then "bind: address already in use"."""
    body = {"name": "p", "listen": f"localhost:{held_port}", "upstream": echo.address}
    answer = call(server, "POST", "/proxies", body)
    expected = (
        f'{{"error":"listen tcp 127.0.0.1:{held_port}: bind: address already in use",'
        f'"status":500}}\n'
    )
    assert_answer(answer, 500, TEXT, expected)
    bad_port = {"name": "q", "listen": "127.0.0.1:99999", "upstream": echo.address}
    assert_answer(
        call(server, "POST", "/proxies", bad_port),
        500,
        TEXT,
        '{"error":"listen tcp: address 99999: invalid port","status":500}\n',
    )


def test_populate_failing_part_way_answers_json_with_what_was_done(
    server: EmbeddedServer, echo: Upstream, held_port: int
) -> None:
    """Point 9: 500, application/json, the proxies created before the failure."""
    first = f"127.0.0.1:{free_port()}"
    entries = [
        {"name": "ok", "listen": first, "upstream": echo.address},
        {"name": "bad", "listen": f"127.0.0.1:{held_port}", "upstream": echo.address},
        {"name": "after", "listen": f"127.0.0.1:{free_port()}", "upstream": echo.address},
    ]
    answer = call(server, "POST", "/populate", entries)
    expected = (
        f'{{"error":"listen tcp 127.0.0.1:{held_port}: bind: address already in use",'
        f'"status":500,"proxies":[{proxy_json("ok", first, echo.address, True)}]}}'
    )
    assert_answer(answer, 500, JSON, expected)
    assert sorted(call(server, "GET", "/proxies").json()) == ["ok"]
    missing = call(server, "POST", "/populate", [{"name": "x"}])
    assert_answer(
        missing,
        400,
        JSON,
        '{"error":"missing required field: upstream at proxy 1","status":400,"proxies":null}',
    )
    assert_answer(call(server, "POST", "/populate", None), 201, JSON, '{"proxies":null}')
    empty = call(server, "POST", "/populate")
    assert_answer(empty, 400, JSON, '{"error":"bad request body: EOF","status":400,"proxies":null}')


def test_a_later_duplicate_in_one_populate_wins(server: EmbeddedServer, echo: Upstream) -> None:
    """Point 10: both entries are answered; the first is stopped, the second is kept."""
    first, second = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    entries = [
        {"name": "d", "listen": first, "upstream": echo.address},
        {"name": "d", "listen": second, "upstream": "127.0.0.1:10"},
    ]
    answer = call(server, "POST", "/populate", entries)
    expected = (
        f'{{"proxies":[{proxy_json("d", first, echo.address, False)},'
        f"{proxy_json('d', second, '127.0.0.1:10', True)}]}}"
    )
    assert_answer(answer, 201, JSON, expected)
    assert_answer(
        call(server, "GET", "/proxies/d"), 200, JSON, proxy_json("d", second, "127.0.0.1:10", True)
    )
    with pytest.raises(ConnectionRefusedError):
        connect(first).close()
    wrong = call(server, "POST", "/populate", {"name": "d"})
    assert wrong.status_code == 400
    assert wrong.json()["error"] == (
        "bad request body: json: cannot unmarshal object into Go value of type "
        '[]struct { toxiproxy.Proxy; Enabled *bool "json:\\"enabled\\"" }'
    )


@pytest.mark.parametrize(
    ("address", "resolved"),
    [
        ("localhost:7070", "127.0.0.1:7070"),
        ("[::1]:80", "[::1]:80"),
        (":0", ":0"),
        ("[::ffff:127.0.0.1]:5", "127.0.0.1:5"),
        ("", ":0"),
    ],
)
def test_addresses_resolve_as_go_prints_them(address: str, resolved: str) -> None:
    assert str(resolve(address)) == resolved


@pytest.mark.parametrize(
    ("address", "error"),
    [
        ("127.0.0.1", "address 127.0.0.1: missing port in address"),
        ("1:2:3", "address 1:2:3: too many colons in address"),
        ("127.0.0.1:99999", "address 99999: invalid port"),
        ("127.0.0.1:nosuchservice", "address tcp/nosuchservice: unknown port"),
    ],
)
def test_bad_addresses_fail_in_go_words(address: str, error: str) -> None:
    with pytest.raises(AddressError) as caught:
        resolve(address)
    assert str(caught.value) == error
