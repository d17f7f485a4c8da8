"""Every code example of the built-in vault is real code.

Python examples run (code, then the pattern's demo, which asserts what the pattern
promises) in a fresh interpreter against local stand-ins: loopback servers from
``vault_standins``, sqlite, and a throwaway ``redis-server`` when one is installed.
JavaScript is syntax-checked with ``node --check``.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from pytest_rafael.vault import Pattern, Vault

HERE = Path(__file__).parent
PATTERNS = Vault.load().patterns
PYTHON = [p for p in PATTERNS if p.code_example.language == "python"]
JAVASCRIPT = [p for p in PATTERNS if p.code_example.language == "javascript"]


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as c:
                    c.sendall(b"PING\r\n")
                    if c.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("redis-server did not start")
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_most_examples_are_executed() -> None:
    runnable = [p for p in PYTHON if not _missing(p)]
    assert len(PYTHON) >= 40
    assert len(runnable) >= 0.85 * len(PYTHON), [p.id for p in PYTHON if _missing(p)]


def test_every_python_example_compiles() -> None:
    # Loading skips this for the built-in files; examples that are skipped below for a
    # missing library must still be valid Python.
    for p in PYTHON:
        compile(p.code_example.code, f"{p.id}:code", "exec")
        compile(p.code_example.demo, f"{p.id}:demo", "exec")


def _missing(pattern: Pattern) -> list[str]:
    return [m for m in pattern.code_example.requires if importlib.util.find_spec(m) is None]


def _run(pattern: Pattern, folder: Path, redis: str | None) -> subprocess.CompletedProcess[str]:
    example = pattern.code_example
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH")]))
    if redis is not None:
        env["RAFAEL_VAULT_REDIS_URL"] = redis
    script = folder / f"{pattern.id}.py"
    script.write_text(example.code + "\n\n# --- demo ---\n" + example.demo, encoding="utf-8")
    return subprocess.run(
        [sys.executable, str(script)],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )


@pytest.fixture(scope="session")
def example_runs(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, subprocess.CompletedProcess[str] | str]:
    """Run every runnable example once, four at a time (most wait on sockets and sleeps,
    so this is several times faster than one after the other on two cores). A value that
    is a string is the reason the example was skipped."""
    redis: str | None = None
    if any("redis" in p.code_example.services for p in PYTHON) and shutil.which("redis-server"):
        redis = request.getfixturevalue("redis_url")
    results: dict[str, subprocess.CompletedProcess[str] | str] = {}
    jobs = {}
    with ThreadPoolExecutor(max_workers=4) as pool:
        for p in PYTHON:
            missing = _missing(p)
            if missing:
                results[p.id] = f"needs {', '.join(missing)}"
            elif "redis" in p.code_example.services and redis is None:
                results[p.id] = "needs redis-server"
            else:
                folder = tmp_path_factory.mktemp(p.id)
                jobs[p.id] = pool.submit(_run, p, folder, redis)
        for pattern_id, job in jobs.items():
            results[pattern_id] = job.result()
    return results


@pytest.mark.parametrize("pattern", PYTHON, ids=[p.id for p in PYTHON])
def test_python_example_runs(
    pattern: Pattern, example_runs: dict[str, subprocess.CompletedProcess[str] | str]
) -> None:
    # A demo must check something: an example that only defines functions proves nothing.
    assert "assert" in pattern.code_example.demo, f"{pattern.id}: the demo asserts nothing"
    proc = example_runs[pattern.id]
    if isinstance(proc, str):
        pytest.skip(proc)
    assert proc.returncode == 0, f"{pattern.source}\n{proc.stdout[-1500:]}{proc.stderr[-3000:]}"


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
@pytest.mark.parametrize("pattern", JAVASCRIPT, ids=[p.id for p in JAVASCRIPT])
def test_javascript_example_parses(pattern: Pattern, tmp_path: Path) -> None:
    script = tmp_path / f"{pattern.id}.js"
    script.write_text(pattern.code_example.code, encoding="utf-8")
    proc = subprocess.run(
        ["node", "--check", str(script)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, f"{pattern.source}\n{proc.stderr[-2000:]}"
