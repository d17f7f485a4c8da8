"""Faults are reverted whatever happens to the test: pass, fail, error, Ctrl-C, SIGTERM,
and a Toxiproxy control port that hangs. Checked against a Toxiproxy server that outlives
the run, and against the process table for stressors."""

from __future__ import annotations

import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import psutil
import pytest
from rafael_plugin_helpers import PYTEST_WITH_CTRL_C, server_state

from pytest_rafael.toxiproxy import EmbeddedServer

ENDINGS = """
import os, signal, time
import pytest

@pytest.mark.chaos("network_latency", "cpu_spike", iterations=1)
def test_fails(chaos_proxy, echo, rt):
    p = chaos_proxy("api", echo.address)
    rt(p.host, p.port)
    assert False, "the service broke"

@pytest.mark.chaos("network_latency", "cpu_spike", iterations=1)
def test_errors(chaos_proxy, echo):
    chaos_proxy("api", echo.address)
    raise RuntimeError("unexpected")

@pytest.fixture
def broken_teardown():
    yield
    raise RuntimeError("teardown broke")

@pytest.mark.chaos("network_latency", "cpu_spike", iterations=1)
def test_teardown_error(chaos_proxy, echo, broken_teardown):
    chaos_proxy("api", echo.address)
"""


def _no_rafael_children() -> list[psutil.Process]:
    me = psutil.Process()
    return [
        p for p in me.children(recursive=True) if "pytest_rafael.faults" in " ".join(p.cmdline())
    ]


def test_faults_are_reverted_after_fail_and_error(
    project: pytest.Pytester, external_toxiproxy: EmbeddedServer
) -> None:
    project.makepyfile(ENDINGS)
    result = project.runpytest_subprocess(
        "--rafael-chaos", "--rafael-toxiproxy", external_toxiproxy.url
    )
    # each pair runs once without faults and once under them: every ending happens twice
    result.assert_outcomes(failed=8, passed=4, errors=4)
    assert server_state(external_toxiproxy.url) == {}  # no proxy, so no toxic, left
    assert _no_rafael_children() == []


def _start_run(project: pytest.Pytester, url: str, body: str) -> subprocess.Popen[bytes]:
    project.makepyfile(body)
    return subprocess.Popen(
        [
            *PYTEST_WITH_CTRL_C,
            "--rafael-chaos",
            "--rafael-toxiproxy",
            url,
            "-p",
            "no:cacheprovider",
            "-s",
        ],
        cwd=project.path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


HANGING = """
import os, time
from pathlib import Path
import pytest

@pytest.mark.chaos("network_latency", "cpu_spike", iterations=1)
def test_hangs(chaos_proxy, echo, chaos):
    chaos_proxy("api", echo.address)
    if not chaos.active:
        return  # the reference run without faults
    Path("started-" + str(os.getpid())).write_text("x")
    time.sleep(60)
"""


def _wait_started(path: Path, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while not list(path.glob("started-*")):
        assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
        assert time.monotonic() < deadline, "the test never started"
        time.sleep(0.05)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_faults_are_reverted_on_interrupt(
    project: pytest.Pytester, external_toxiproxy: EmbeddedServer, sig: signal.Signals
) -> None:
    proc = _start_run(project, external_toxiproxy.url, HANGING)
    try:
        _wait_started(project.path, proc)
        state = server_state(external_toxiproxy.url)
        (proxy,) = state.values()
        assert [t["type"] for t in proxy["toxics"]] == ["latency"]  # the fault is live
        proc.send_signal(sig)
        output = proc.communicate(timeout=60)[0].decode()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == pytest.ExitCode.INTERRUPTED, output
    assert "KeyboardInterrupt" in output
    assert server_state(external_toxiproxy.url) == {}


def test_stressor_processes_die_with_an_interrupted_run(
    project: pytest.Pytester, external_toxiproxy: EmbeddedServer
) -> None:
    proc = _start_run(
        project,
        external_toxiproxy.url,
        """
import os, time
from pathlib import Path
import pytest

@pytest.mark.chaos("cpu_spike", iterations=1)
def test_hangs(chaos):
    if not chaos.active:
        return  # the reference run without faults
    Path("started-" + str(os.getpid())).write_text("x")
    time.sleep(60)
""",
    )
    try:
        _wait_started(project.path, proc)
        children = psutil.Process(proc.pid).children(recursive=True)
        assert children, "the cpu stressor should be running"
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
        _gone, alive = psutil.wait_procs(children, timeout=10)
        assert alive == []
    finally:
        if proc.poll() is None:
            proc.kill()


def test_a_hung_toxiproxy_control_port_fails_fast_instead_of_hanging(
    project: pytest.Pytester,
) -> None:
    # Accepts connections and never answers: what a wedged control port looks like.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    accepted: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    port = listener.getsockname()[1]
    project.makepyfile("""
        import pytest

        @pytest.mark.chaos("network_latency", iterations=1)
        def test_x(chaos_proxy, echo):
            chaos_proxy("api", echo.address)
    """)
    result = project.runpytest_subprocess(
        "--rafael-chaos",
        "--rafael-toxiproxy",
        f"http://127.0.0.1:{port}",
        "--rafael-control-timeout",
        "1",
    )
    listener.close()
    for conn in accepted:
        conn.close()
    assert result.ret != 0
    result.stderr.fnmatch_lines(["*did not answer GET /version within 1 s*"])


def test_a_killed_run_leaves_its_start_in_the_audit_log(
    project: pytest.Pytester, external_toxiproxy: EmbeddedServer
) -> None:
    from pytest_rafael.guardian.audit import AuditLog
    from pytest_rafael.store.core import Store

    proc = _start_run(project, external_toxiproxy.url, HANGING)
    try:
        _wait_started(project.path, proc)
        proc.kill()  # SIGKILL: no teardown, no session end
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    with Store(project.path / ".rafael" / "rafael.db") as store:
        log = AuditLog(store)
        assert [e.event_type for e in log.entries()] == ["run_started"]
        assert log.verify().ok
