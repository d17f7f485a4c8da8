"""Runs that die or are interrupted mid-iteration, while faults are in place.

SIGKILL against an external ``rafael toxiproxy serve``: the next run sweeps the proxies
the dead run left (and nothing else). SIGTERM and Ctrl-C: the run reverts its faults,
audits what it injected and reverted, finishes as "interrupted" exactly once and writes a
partial report in place of the last one.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rafael_plugin_helpers import PYTEST_WITH_CTRL_C, server_state

from pytest_rafael.guardian.audit import AuditLog
from pytest_rafael.store.core import Store

# The test signals that it is inside its call, under its faults, then waits to be killed.
HANGING = """
import pathlib
import time

import pytest


@pytest.mark.chaos("network_latency", iterations=2)
def test_hangs(chaos_proxy, echo, chaos):
    chaos_proxy("db", echo.address)
    if chaos.active:
        time.sleep(0.3)  # the latency toxic starts at 0 s
        pathlib.Path("in_call").write_text("x")
        time.sleep(120)
"""

COUNTING_CONFTEST = """

def pytest_rafael_run_finished(run):
    with open("run_finished.count", "a") as f:
        f.write(run.run_id + "\\n")
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for(predicate: Any, what: str, proc: subprocess.Popen[str] | None = None) -> None:
    deadline = time.monotonic() + 120  # a liveness guard for a loaded machine, not a goal
    while not predicate():
        if proc is not None and proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"exited before {what}: {out}\n{err}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def served() -> Iterator[str]:
    """``rafael toxiproxy serve`` in its own process: it outlives the runs under test."""
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from pytest_rafael.cli import main; sys.exit(main(sys.argv[1:]))",
            "toxiproxy",
            "serve",
            "--port",
            str(port),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            urllib.request.urlopen(f"{url}/version", timeout=1).close()
        except OSError:
            return False
        return True

    try:
        _wait_for(up, "the Toxiproxy server")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _start(project: pytest.Pytester, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.Popen(
        [
            *PYTEST_WITH_CTRL_C,
            "-p",
            "no:cacheprovider",
            "-p",
            "no:hypothesispytest",
            "--rafael-chaos",
            "--rafael-seed",
            "3",
            *args,
        ],
        cwd=project.path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _post(url: str, path: str, body: dict[str, Any]) -> None:
    request = urllib.request.Request(f"{url}{path}", data=json.dumps(body).encode(), method="POST")
    urllib.request.urlopen(request, timeout=5).close()


def _events(store: Path) -> list[Any]:
    with Store(store) as s:
        log = AuditLog(s)
        assert log.verify().ok
        return list(log.entries())


def test_sigkill_leaves_proxies_that_the_next_run_sweeps(
    project: pytest.Pytester,
    served: str,
) -> None:
    project.makepyfile(test_hang=HANGING)
    proc = _start(project, "--rafael-toxiproxy", served)
    _wait_for(lambda: (project.path / "in_call").exists(), "the call under faults", proc)
    left = server_state(served)
    assert len(left) == 1
    ((name, proxy),) = left.items()
    assert proxy["toxics"], "the fault is active when the run is killed"
    proc.kill()
    proc.communicate(timeout=60)
    assert name in server_state(served)  # what the issue found: the proxy stays

    # Proxies the sweep must leave alone: one this plugin did not name, and one whose
    # owner (this test process) is alive.
    from pytest_rafael.faults.orphans import server_name

    live = server_name("db", "main", 0, "1")
    _post(
        served,
        "/proxies",
        {"name": "someone-elses", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:9"},
    )
    _post(served, "/proxies", {"name": live, "listen": "127.0.0.1:0", "upstream": "127.0.0.1:9"})

    (project.path / "in_call").unlink()
    project.makepyfile(test_hang="def test_nothing():\n    pass\n")
    project.makepyfile(
        test_next="""
import pytest

@pytest.mark.chaos("network_latency", iterations=1)
def test_quick(chaos_proxy, echo):
    import time
    chaos_proxy("db", echo.address)
    time.sleep(0.3)
"""
    )
    done = _start(project, "--rafael-toxiproxy", served)
    out, err = done.communicate(timeout=300)
    assert done.returncode == 0, out + err
    assert f"rafael: swept 1 proxies left by dead runs on {served}: {name}" in out
    assert set(server_state(served)) == {"someone-elses", live}
    events = _events(project.path / ".rafael" / "rafael.db")
    started = [e for e in events if e.event_type == "run_started"]
    assert started[-1].details["swept_proxies"] == [name]
    results = json.loads((project.path / "reports" / "results.json").read_text())
    assert results["swept_proxies"] == [name]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_interrupted_run_reverts_records_and_reports_once(
    project: pytest.Pytester,
    external_toxiproxy: Any,
    signum: signal.Signals,
) -> None:
    project.makeconftest((project.path / "conftest.py").read_text() + COUNTING_CONFTEST)
    reports = project.path / "reports"
    reports.mkdir()
    (reports / "results.json").write_text('{"run_id": "an-older-run"}')
    project.makepyfile(test_hang=HANGING)
    proc = _start(project, "--rafael-toxiproxy", external_toxiproxy.url)
    _wait_for(lambda: (project.path / "in_call").exists(), "the call under faults", proc)
    (proxy,) = server_state(external_toxiproxy.url).values()
    assert proxy["toxics"]
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == int(pytest.ExitCode.INTERRUPTED), out + err
    assert "Traceback" not in out + err
    assert server_state(external_toxiproxy.url) == {}  # reverted and deleted

    finished = (project.path / "run_finished.count").read_text().split()
    assert len(finished) == 1  # the hook fired exactly once
    events = _events(project.path / ".rafael" / "rafael.db")
    kinds = [e.event_type for e in events]
    assert kinds.count("run_finished") == 1
    assert (
        kinds.index("faults_injected")
        < kinds.index("faults_reverted")
        < kinds.index("run_finished")
    )
    injected = next(e for e in events if e.event_type == "faults_injected")
    reverted = next(e for e in events if e.event_type == "faults_reverted")
    assert injected.details["faults"] >= 1
    assert reverted.details["faults"] == injected.details["faults"]
    end = next(e for e in events if e.event_type == "run_finished")
    assert end.details["status"] == "interrupted"
    assert end.details["run_id"] == finished[0]

    results = json.loads((reports / "results.json").read_text())
    assert results["run_id"] == finished[0]  # the old report is replaced
    assert results["status"] == "interrupted"
    assert results["interrupted_by"] == signum.name
    assert not results["gate"]["passed"]
    assert "INTERRUPTED" in (reports / "summary.md").read_text()
    assert "INTERRUPTED" in (reports / "index.html").read_text()
    assert "run INTERRUPTED" in out


def test_a_collection_error_is_not_reported_as_a_signal(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        import pytest

        @pytest.mark.chaos("no_such_scenario")
        def test_x():
            pass
    """)
    result = pytester.runpytest_subprocess("--rafael-chaos", "--rafael-report=out")
    out = result.stdout.str()
    assert "collection errors" in out
    assert "SIGINT" not in out
