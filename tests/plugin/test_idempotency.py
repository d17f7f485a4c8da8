"""Evolution is safe for non-idempotent writes: a server counts every request it receives
while a real proxy cuts its replies, and no genome may deliver one request twice."""

from __future__ import annotations

import pytest
from rafael_plugin_helpers import read_results, write_scenario

from pytest_rafael.genome.genome import Genome

REPLY_CUT = """
name: cut
description: replies are cut after the request arrived
severity: high
faults:
  - kind: toxic
    target: api
    type: limit_data
    stream: downstream
    attributes: {bytes: 0}
"""

COUNTER = '''
import collections
import socket
import threading

import pytest


class Counter:
    """Counts each request line it receives, then answers OK."""

    def __init__(self):
        self.seen = collections.Counter()
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
            with conn:
                data = b""
                while not data.endswith(b"\\n"):
                    chunk = conn.recv(1024)
                    if not chunk:
                        break
                    data += chunk
                if data:
                    self.seen[data.strip().decode()] += 1
                    try:
                        conn.sendall(b"OK\\n")
                    except OSError:
                        pass


@pytest.fixture
def counter():
    server = Counter()
    yield server
    server.sock.close()
'''

TEST = """
import pytest
import socket
from pytest_rafael import antifragile


@antifragile("orders"DECLARATION)
def place(host, port, order):
    with socket.create_connection((host, port), timeout=2) as s:
        s.sendall(order.encode() + b"\\n")
        if not s.recv(3):
            raise ConnectionError("the reply was cut")


@pytest.mark.chaos("cut", module="orders", iterations=4)
def test_each_order_is_delivered_once(chaos_proxy, counter):
    api = chaos_proxy("api", counter.address)
    for n in range(3):
        try:
            place(api.host, api.port, "order-%d" % n)
        except OSError:
            pass  # outcome unknown: the order may have arrived
    assert dict(counter.seen) == {"order-0": 1, "order-1": 1, "order-2": 1}
"""

GREEDY = """orders:
  generation: 0
  genes:
    retry: {max_attempts: 4, base_delay: 0.0, on: [Exception]}
"""


def _project(project: pytest.Pytester, declaration: str) -> None:
    write_scenario(project.path / "scen", "cut", REPLY_CUT)
    project.makeconftest(project.path.joinpath("conftest.py").read_text() + COUNTER)
    project.makepyfile(test_orders=TEST.replace("DECLARATION", declaration))
    (project.path / "rafael.genome.yaml").write_text(GREEDY)


def _retry_on(genome: dict | None) -> list[str] | None:
    retry = (genome or {}).get("genes", {}).get("retry")
    return None if retry is None else list(retry["on"])


def test_a_declared_non_idempotent_call_is_never_resent(project: pytest.Pytester) -> None:
    # The shipped genome retries every error, but the module says a call must never be
    # re-sent once it may have arrived: @antifragile holds to that at run time.
    _project(project, ", idempotent=False")
    result = project.runpytest_subprocess(
        "--rafael-chaos", "--rafael-scenarios=scen", "--rafael-seed=11"
    )
    assert result.ret == 0, result.stdout.str()
    (test,) = read_results(project)["tests"]
    assert [i["outcome"] for i in test["iterations"]] == ["passed"] * 4
    assert all(i["runtime"]["retries"] == 0 for i in test["iterations"])
    assert test["idempotent"] is False
    # every candidate retries only errors that prove nothing was sent
    for it in test["iterations"][1:]:
        on = _retry_on(it["genome"])
        assert on is None or set(on) <= {"NotDelivered", "ConnectionRefusedError"}, on
    report = (project.path / "reports" / "index.html").read_text()
    assert "is declared non-idempotent" in report


def test_evolution_narrows_a_retry_that_duplicates_writes(project: pytest.Pytester) -> None:
    # Nothing is declared: the shipped retry re-sends every cut order and the test sees
    # duplicates. No candidate may retry more than errors that prove nothing was sent.
    _project(project, "")
    result = project.runpytest_subprocess(
        "--rafael-chaos", "--rafael-scenarios=scen", "--rafael-seed=11"
    )
    (test,) = read_results(project)["tests"]
    outcomes = [i["outcome"] for i in test["iterations"]]
    assert outcomes[0] == "failed", result.stdout.str()  # the shipped genome duplicated
    for it in test["iterations"][1:]:
        on = _retry_on(it["genome"])
        assert on is None or set(on) <= {"NotDelivered", "ConnectionRefusedError"}, on
        assert it["outcome"] == "passed", it
    # the narrowed candidate kept every order single and beats the shipped genome
    assert test["best_fitness"] > test["baseline_fitness"]
    assert _retry_on(test["best_genome"]) in (None, ["NotDelivered"])
    assert Genome.from_dict("orders", test["baseline_genome"]).genes["retry"]["on"] == (
        "Exception",
    )
