"""Helpers for the plugin tests (plain functions; the fixtures live in conftest.py)."""

from __future__ import annotations

import json
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest

# `python -m pytest` with Ctrl-C working: a process started in the background by a shell
# without job control (CI scripts, stress_ci.sh's callers) inherits SIGINT ignored, and
# Python then never raises KeyboardInterrupt; a test that sends SIGINT would hang.
PYTEST_WITH_CTRL_C = [
    sys.executable,
    "-c",
    "import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "sys.argv[0] = 'pytest'; runpy.run_module('pytest', run_name='__main__', alter_sys=True)",
]

ECHO_CONFTEST = '''
import socket
import threading
import time

import pytest


class Echo:
    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.address = "127.0.0.1:%d" % self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._echo, args=(conn,), daemon=True).start()

    def _echo(self, conn):
        with conn:
            while True:
                try:
                    data = conn.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                conn.sendall(data)


@pytest.fixture(scope="session")
def echo():
    server = Echo()
    yield server
    server.sock.close()


def round_trip(host, port, payload=b"ping", timeout=5.0):
    """Seconds for one request/response through host:port."""
    started = time.monotonic()
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(payload)
        got = b""
        while len(got) < len(payload):
            chunk = s.recv(65536)
            if not chunk:
                raise ConnectionError("closed after %d bytes" % len(got))
            got += chunk
    return time.monotonic() - started


@pytest.fixture
def rt():
    return round_trip
'''


def read_results(pytester: pytest.Pytester) -> dict[str, Any]:
    return dict(json.loads((pytester.path / "reports" / "results.json").read_text()))


def server_state(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{url}/proxies", timeout=5) as response:
        return dict(json.loads(response.read()))


def write_scenario(dirpath: Path, name: str, body: str) -> Path:
    dirpath.mkdir(parents=True, exist_ok=True)
    path = dirpath / f"{name}.yaml"
    path.write_text(body)
    return path
