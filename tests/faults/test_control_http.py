"""The plugin's Toxiproxy control client: one kept-alive connection, a transparent
reconnect when the server dropped it while idle, and one deadline per whole call."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from pytest_rafael.faults.control_http import DeadlineExceeded, KeepAliveClient
from pytest_rafael.faults.network import ToxiproxyControl, ToxiproxyError
from pytest_rafael.toxiproxy import EmbeddedServer

Handler = Callable[[socket.socket], None]


class RawServer:
    """A loopback server running ``handler`` per connection; counts connections."""

    def __init__(self, handler: Handler) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.accepted = 0
        self._handler = handler
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self._handler, args=(conn,), daemon=True).start()

    def close(self) -> None:
        self.listener.close()


def read_request(conn: socket.socket) -> bool:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            return False
        data += chunk
    return True


def answer_then_drop(conn: socket.socket) -> None:
    """Answers one request as if keeping the connection, then closes it (idle timeout)."""
    with conn:
        if read_request(conn):
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            time.sleep(0.05)


def trickle(conn: socket.socket) -> None:
    """Promises 100 bytes and sends one every 50 ms: each read is quick, the whole is not."""
    with conn:
        if read_request(conn):
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
            for _ in range(100):
                time.sleep(0.05)
                try:
                    conn.sendall(b"x")
                except OSError:
                    return


@pytest.fixture
def embedded() -> Iterator[EmbeddedServer]:
    with EmbeddedServer() as server:
        yield server


def test_calls_share_one_connection(embedded: EmbeddedServer) -> None:
    control = ToxiproxyControl(embedded.url, timeout=5)
    accepted: list[object] = []
    real_connect = socket.create_connection

    def counting(*args: object, **kwargs: object) -> socket.socket:
        accepted.append(args)
        return real_connect(*args, **kwargs)  # type: ignore[arg-type]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(socket, "create_connection", counting)
        handle = control.create_proxy("db", "127.0.0.1:9")
        control.add_toxic(
            handle,
            name="t",
            type="latency",
            stream="downstream",
            toxicity=1.0,
            attributes={"latency": 5},
        )
        assert embedded.collection.toxics(handle.server_name)[0]["name"] == "t"
        control.remove_toxic(handle, "t")
        control.set_enabled(handle, False)
        assert embedded.collection.show(handle.server_name)["enabled"] is False
        control.delete_proxy(handle)
    assert len(accepted) == 1  # five calls, one TCP connection
    with pytest.raises(ToxiproxyError, match="HTTP 404: proxy not found"):
        control.delete_proxy(handle)


def test_a_connection_dropped_while_idle_is_reopened_once() -> None:
    server = RawServer(answer_then_drop)
    try:
        client = KeepAliveClient("127.0.0.1", server.port, timeout=5)
        for _ in range(3):
            time.sleep(0.1)  # the server has closed the previous connection by now
            reply = client.request("GET", "/version")
            assert (reply.status, reply.body) == (200, b"ok")
        assert server.accepted == 3
    finally:
        server.close()


def test_the_deadline_bounds_the_whole_call_not_each_read() -> None:
    server = RawServer(trickle)
    try:
        client = KeepAliveClient("127.0.0.1", server.port, timeout=0.5)
        with pytest.raises(DeadlineExceeded):
            client.request("GET", "/version")
        control = ToxiproxyControl(f"http://127.0.0.1:{server.port}", timeout=0.5)
        with pytest.raises(ToxiproxyError, match=r"did not answer GET /version within 0\.5 s"):
            control.version()
    finally:
        server.close()


def test_the_embedded_server_is_driven_in_process_with_the_same_answers(
    embedded: EmbeddedServer,
) -> None:
    over_http = ToxiproxyControl(embedded.url, timeout=5)
    local = ToxiproxyControl(embedded.url, timeout=5, local=embedded)
    opened: list[object] = []
    real_connect = socket.create_connection

    def counting(*args: object, **kwargs: object) -> socket.socket:
        opened.append(args)
        return real_connect(*args, **kwargs)  # type: ignore[arg-type]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(socket, "create_connection", counting)
        assert local.version() == '{"version": "2.12.0"}\n'
        handle = local.create_proxy("db", "127.0.0.1:9")
        local.add_toxic(
            handle,
            name="t",
            type="latency",
            stream="upstream",
            toxicity=1.0,
            attributes={"latency": 5},
        )
        local.set_enabled(handle, False)
    assert opened == []  # no HTTP round trip
    # What the HTTP API reports is what the direct calls did.
    shown = over_http._call("show", "GET", f"/proxies/{handle.server_name}").json()
    assert (shown["enabled"], shown["toxics"][0]["stream"]) == (False, "upstream")
    errors = []
    for control in (local, over_http):
        with pytest.raises(ToxiproxyError) as caught:
            control.add_toxic(
                handle, name="t", type="latency", stream="upstream", toxicity=1.0, attributes={}
            )
        errors.append(str(caught.value).split("failed: ")[1])
    assert errors == ["HTTP 409: toxic already exists"] * 2
    local.delete_proxy(handle)
    with pytest.raises(ToxiproxyError, match="HTTP 404: proxy not found"):
        local.remove_toxic(handle, "t")


def web_page(conn: socket.socket) -> None:
    """A web application on the port given as Toxiproxy's: 200 and HTML for anything."""
    with conn:
        while read_request(conn):
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 16\r\n\r\n<html>app</html>")


def test_a_server_that_is_not_toxiproxy_is_one_clear_error() -> None:
    server = RawServer(web_page)
    try:
        control = ToxiproxyControl(f"http://127.0.0.1:{server.port}", timeout=2.0)
        with pytest.raises(ToxiproxyError, match=r"not Toxiproxy's JSON .*Toxiproxy server\?"):
            control.proxy_names()
        with pytest.raises(ToxiproxyError, match="names no listen address"):
            control.create_proxy("api", "127.0.0.1:9")
        control.close()
    finally:
        server.close()
