"""The webhook notifier against a real loopback HTTP server."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from guardian_factories import evidence, genome, key

from pytest_rafael.guardian import Guardian, GuardianConfig
from pytest_rafael.guardian.notify import WebhookNotifier


class Hook:
    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.status = 200
        self.delay = 0.0


@pytest.fixture
def hook() -> Iterator[tuple[Hook, str]]:
    state = Hook()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            time.sleep(state.delay)
            state.received.append({"ctype": self.headers["Content-Type"], "body": json.loads(body)})
            self.send_response(state.status)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    yield state, f"http://127.0.0.1:{server.server_address[1]}/rafael"
    server.shutdown()
    server.server_close()


def test_proposal_and_decisions_are_posted(
    hook: tuple[Hook, str], make_guardian: Callable[..., Guardian]
) -> None:
    state, url = hook
    g = make_guardian(config=GuardianConfig(webhook_url=url, webhook_timeout=5))
    p = g.propose("search", None, genome(1), evidence())
    g.approve(p.id, "bob", key=key("bob"))
    kinds = [r["body"]["event_type"] for r in state.received]
    assert kinds == ["proposal_created", "approval_recorded", "proposal_approved", "genome_adopted"]
    assert all(r["ctype"] == "application/json" for r in state.received)
    first = state.received[0]["body"]
    assert first["change_id"] == p.id
    assert first["module"] == "search"
    assert first["impact"] == "medium"
    assert first["actor"] == "alice"


def test_http_error_is_logged_not_raised(
    hook: tuple[Hook, str], caplog: pytest.LogCaptureFixture
) -> None:
    state, url = hook
    state.status = 500
    notifier = WebhookNotifier(url, timeout=5)
    with caplog.at_level(logging.WARNING, "pytest_rafael.guardian"):
        notifier({"event_type": "proposal_created"})
    assert notifier.failures == 1
    assert "HTTP 500" in caplog.text


def test_timeout_bounds_a_slow_endpoint(
    hook: tuple[Hook, str], caplog: pytest.LogCaptureFixture
) -> None:
    state, url = hook
    state.delay = 3.0
    notifier = WebhookNotifier(url, timeout=0.3)
    with caplog.at_level(logging.WARNING, "pytest_rafael.guardian"):
        notifier({"event_type": "genome_adopted"})
    # Cut off by the timeout: had it waited for the server, the call would have succeeded.
    assert notifier.failures == 1
    assert "failed" in caplog.text


def test_refused_connection_does_not_block_adoption(
    make_guardian: Callable[..., Guardian], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    g = make_guardian(
        config=GuardianConfig(webhook_url=f"http://127.0.0.1:{port}/x", webhook_timeout=1)
    )
    with caplog.at_level(logging.WARNING, "pytest_rafael.guardian"):
        p = g.approve(g.propose("search", None, genome(1), evidence()).id, "bob", key=key("bob"))
    assert p.status == "adopted"
    assert (tmp_path / "rafael.genome.yaml").exists()
    assert "webhook" in caplog.text
