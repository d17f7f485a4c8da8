"""``rafael toxiproxy serve`` and ``python -m pytest_rafael.toxiproxy`` as real processes."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from pytest_rafael.cli import CommandError
from pytest_rafael.toxiproxy.cli import register


def run_serve(argv: list[str]) -> int:
    """Parse and run ``rafael toxiproxy serve`` through this group's ``register``."""
    import argparse

    group = argparse.ArgumentParser(prog="rafael toxiproxy")
    register(group.add_subparsers(dest="subcommand"), group)
    args = group.parse_args(["serve", *argv])
    return int(args.func(args))


def free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        return int(probe.getsockname()[1])


def wait_for_api(url: str, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        try:
            requests.get(url + "/version", timeout=1)
            return
        except requests.ConnectionError:
            time.sleep(0.05)
    raise AssertionError("server did not start")


def test_module_serves_config_and_stops_on_sigterm(tmp_path: Path) -> None:
    port, upstream = free_port(), free_port()
    config = tmp_path / "proxies.json"
    config.write_text(
        json.dumps(
            [{"name": "redis", "listen": "127.0.0.1:0", "upstream": f"127.0.0.1:{upstream}"}]
        )
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pytest_rafael.toxiproxy",
            "--port",
            str(port),
            "--config",
            str(config),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for_api(url, proc)
        proxies = requests.get(url + "/proxies", timeout=5).json()
        assert proxies["redis"]["upstream"] == f"127.0.0.1:{upstream}"
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0
    assert "populated 1 proxies" in out


def test_bad_config_is_a_one_line_usage_error(tmp_path: Path) -> None:
    config = tmp_path / "proxies.json"
    config.write_text('[{"name": "x"}]')
    with pytest.raises(CommandError) as caught:
        run_serve(["--port", "0", "--config", str(config)])
    assert caught.value.exit_code == 2
    assert "missing required field: upstream" in str(caught.value)
    assert "\n" not in str(caught.value)


def test_unreadable_config_and_busy_port_are_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="cannot read config"):
        run_serve(["--port", "0", "--config", str(tmp_path / "missing.json")])
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        with pytest.raises(CommandError, match=r"cannot listen on 127\.0\.0\.1") as caught:
            run_serve(["--port", str(port)])
    assert caught.value.exit_code == 2


def test_module_reports_usage_errors_with_exit_2(tmp_path: Path) -> None:
    config = tmp_path / "bad.json"
    config.write_text("{not json")
    proc = subprocess.run(
        [sys.executable, "-m", "pytest_rafael.toxiproxy", "--port", "0", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2
    assert "not valid JSON" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_server_package_imports_neither_pytest_nor_the_plugin() -> None:
    code = (
        "import sys, pytest_rafael.toxiproxy\n"
        "bad = [m for m in ('pytest', '_pytest', 'pytest_rafael.plugin', 'jinja2', 'requests')"
        " if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30)
