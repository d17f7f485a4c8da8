"""Plugin overhead and fault set-up cost, each against a peer measured in the same run.

1. A suite of 5,000 trivial tests with pytest-rafael installed and --rafael-chaos off,
   against the same suite with ``-p no:rafael``. Interleaved repeats; medians compared.
2. Applying and reverting one toxic per iteration (the injector's start + stop) on the
   embedded server, against a bare HTTP round trip to the same server.
3. The cost of a chaos iteration end to end: ``--tests`` tests that each create proxies
   with ``chaos_proxy`` and talk through them, run with ``--rafael-chaos`` (one toxic per
   iteration), against a plain run of the same test bodies (same item count, straight to
   the upstream, no proxy). Also with one extra proxy and with one extra toxic, for the
   marginal cost of each. The Toxiproxy server is the embedded one, or the one named by
   ``--toxiproxy URL`` (e.g. a real Toxiproxy).

Run: python benchmarks/plugin_bench.py [--tests 5000] [--repeats 5]
     python benchmarks/plugin_bench.py --only iteration [--tests 200] [--iterations 5]

``--load N`` keeps N CPU-bound processes busy meanwhile (a loaded 2-core machine); the
load average is printed before and after.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import re
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path


def suite_overhead(n_tests: int, repeats: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        body = "\n".join(f"def test_{i}():\n    assert {i} == {i}\n" for i in range(n_tests))
        (root / "test_many.py").write_text(body)
        (root / "pytest.ini").write_text("[pytest]\naddopts = -p no:cacheprovider -q\n")
        base = [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:randomly",
            "-p",
            "no:xdist",
            "-p",
            "no:benchmark",
            "-p",
            "no:hypothesispytest",
        ]
        runs: dict[str, list[float]] = {"with rafael": [], "-p no:rafael": []}
        for _ in range(repeats):
            for label, extra in (("with rafael", []), ("-p no:rafael", ["-p", "no:rafael"])):
                started = time.perf_counter()
                subprocess.run([*base, *extra], cwd=root, check=True, stdout=subprocess.DEVNULL)
                runs[label].append(time.perf_counter() - started)
        with_p = statistics.median(runs["with rafael"])
        without = statistics.median(runs["-p no:rafael"])
        print(f"{n_tests} trivial tests, median of {repeats} interleaved runs:")
        print(f"  -p no:rafael  {without:.3f} s")
        print(f"  with rafael   {with_p:.3f} s   overhead {100 * (with_p / without - 1):+.2f}%")


def fault_setup_cost(rounds: int) -> None:
    from pytest_rafael.faults.injector import FaultInjector
    from pytest_rafael.faults.network import ToxiproxyControl
    from pytest_rafael.scenario.model import FaultSpec, Scenario
    from pytest_rafael.toxiproxy import EmbeddedServer

    with EmbeddedServer() as server:
        control = ToxiproxyControl(server.url)
        proxy = control.create_proxy("db", "127.0.0.1:9")
        scenario = Scenario(
            "s",
            "",
            "low",
            (FaultSpec(kind="toxic", target="db", type="latency", attributes={"latency": 100}),),
        )
        cycle, bare = [], []
        for _ in range(rounds):
            started = time.perf_counter()
            injector = FaultInjector(scenario, {"db": proxy}, control, None)
            injector.start()
            injector.stop()
            cycle.append(time.perf_counter() - started)
            started = time.perf_counter()
            with urllib.request.urlopen(f"{server.url}/version") as r:
                r.read()
            bare.append(time.perf_counter() - started)
        c, b = statistics.median(cycle), statistics.median(bare)
        print(
            f"apply + revert one toxic (2 control calls), median of {rounds}: "
            f"{c * 1000:.2f} ms; one bare GET /version {b * 1000:.2f} ms "
            f"(ratio {c / b:.1f}x)"
        )


_CONFTEST = """
import os
import pytest

UPSTREAM = os.environ["BENCH_UPSTREAM"]
PROXIES = int(os.environ["BENCH_PROXIES"])
COPIES = int(os.environ.get("BENCH_COPIES", "1"))


def pytest_configure(config):
    config.addinivalue_line("markers", "chaos: chaos scenarios (pytest-rafael)")


if os.environ.get("BENCH_PLAIN") == "1":
    def pytest_generate_tests(metafunc):
        metafunc.parametrize("copy", range(COPIES))

    @pytest.fixture
    def addresses():
        return [UPSTREAM] * PROXIES
else:
    @pytest.fixture
    def copy():
        return 0

    @pytest.fixture
    def addresses(chaos_proxy):
        return [chaos_proxy("db" if i == 0 else f"db{i}", UPSTREAM).listen
                for i in range(PROXIES)]
"""

_TEST = """
@pytest.mark.chaos("bench_toxic", iterations={iterations})
def test_{i}(addresses, copy):
    for address in addresses:
        host, _, port = address.rpartition(":")
        with socket.create_connection((host, int(port))) as sock:
            sock.sendall(b"x")
            assert sock.recv(1) == b"x"
"""


def _scenario(toxics: int) -> str:
    faults = "".join(
        f"  - {{kind: toxic, target: db, type: latency, stream: "
        f"{'downstream' if k % 2 == 0 else 'upstream'}, attributes: {{latency: 0}}}}\n"
        for k in range(toxics)
    )
    return (
        f"name: bench_toxic\ndescription: zero-latency toxics, cost only\n"
        f"severity: low\nfaults:\n{faults}"
    )


def _echo_server() -> tuple[socket.socket, str]:
    listener = socket.create_server(("127.0.0.1", 0), backlog=512)

    def serve(conn: socket.socket) -> None:
        with conn:
            while data := conn.recv(4096):
                conn.sendall(data)

    def accept() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    return listener, f"127.0.0.1:{listener.getsockname()[1]}"


def _timed_run(root: Path, env: dict[str, str], args: list[str]) -> tuple[float, int, float]:
    """(wall seconds, passed items, CPU seconds of the pytest process)."""
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "-p",
        "no:randomly",
        "-p",
        "no:xdist",
        *args,
    ]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True)
    took = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    found = re.search(r"(\d+) passed", done.stdout)
    if found is None or " failed" in done.stdout or " error" in done.stdout:
        raise SystemExit(f"benchmark run failed:\n{done.stdout[-3000:]}\n{done.stderr[-2000:]}")
    return took, int(found.group(1)), cpu


def iteration_cost(n_tests: int, iterations: int, repeats: int, toxiproxy: str | None) -> None:
    """End-to-end cost of a chaos iteration against a plain run of the same tests."""
    listener, upstream = _echo_server()
    variants = {
        "1 proxy, 1 toxic": (1, 1),
        "2 proxies, 1 toxic": (2, 1),
        "1 proxy, 2 toxics": (1, 2),
    }
    # per variant: (chaos wall, plain wall, chaos CPU, plain CPU) of each round
    rounds: dict[str, list[tuple[float, float, float, float]]] = {n: [] for n in variants}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "pytest.ini").write_text("[pytest]\n")
        (root / "conftest.py").write_text(_CONFTEST)
        body = "".join(_TEST.format(i=i, iterations=iterations) for i in range(n_tests))
        (root / "test_bench.py").write_text("import socket\nimport pytest\n" + body)
        # Compiled bytecode is cached as on a developer's machine (PYTHONDONTWRITEBYTECODE
        # would make every run recompile the modules chaos mode imports), in a folder of
        # its own so that nothing is written beside the sources.
        base_env = {
            **os.environ,
            "BENCH_UPSTREAM": upstream,
            "PYTHONPYCACHEPREFIX": str(root / "pycache"),
        }
        base_env.pop("PYTHONDONTWRITEBYTECODE", None)
        extra = ["--rafael-toxiproxy", toxiproxy] if toxiproxy else []
        for round_no in range(-1, repeats):  # round -1 warms the bytecode cache up
            for name, (proxies, toxics) in variants.items():
                scen = root / f"scen{toxics}"
                scen.mkdir(exist_ok=True)
                (scen / "bench_toxic.yaml").write_text(_scenario(toxics))
                env = {**base_env, "BENCH_PROXIES": str(proxies)}
                chaos_s, items, chaos_cpu = _timed_run(
                    root,
                    env,
                    [
                        "--rafael-chaos",
                        "--rafael-seed",
                        "1",
                        "--rafael-scenarios",
                        str(scen),
                        *extra,
                    ],
                )
                plain_env = {**env, "BENCH_PLAIN": "1", "BENCH_COPIES": str(items // n_tests)}
                plain_s, plain_items, plain_cpu = _timed_run(
                    root, plain_env, ["--rafael-scenarios", str(scen)]
                )
                assert plain_items == items, (plain_items, items)
                if round_no < 0:
                    continue
                rounds[name].append((chaos_s, plain_s, chaos_cpu, plain_cpu))
                print(
                    f"  {name}: chaos {chaos_s:.2f} s ({chaos_cpu:.2f} s CPU), plain "
                    f"{plain_s:.2f} s ({plain_cpu:.2f} s CPU), {items} items",
                    flush=True,
                )
    listener.close()
    _print_iteration_cost(rounds, n_tests * iterations, repeats, toxiproxy)


def _print_iteration_cost(
    rounds: dict[str, list[tuple[float, float, float, float]]],
    count: int,
    repeats: int,
    toxiproxy: str | None,
) -> None:
    """Three estimates per variant, in ms per chaos iteration: the median of the paired
    (chaos - plain) differences, the difference of the least-disturbed (minimum) runs,
    and the same for the pytest process's CPU time (the embedded server's work included;
    an external server's CPU is not)."""

    def costs(name: str) -> tuple[float, float, float]:
        rows = rounds[name]
        paired = statistics.median(c - p for c, p, _, _ in rows)
        least = min(r[0] for r in rows) - min(r[1] for r in rows)
        cpu = min(r[2] for r in rows) - min(r[3] for r in rows)
        return paired / count * 1e3, least / count * 1e3, cpu / count * 1e3

    print(
        f"chaos iteration cost over {count} iterations, {repeats} interleaved rounds against "
        f"a plain run of the same items (server: {toxiproxy or 'embedded'}); ms per "
        f"iteration as median of paired differences / difference of minima / CPU:"
    )
    base = costs("1 proxy, 1 toxic")
    for name in rounds:
        value = costs(name)
        marginal = (
            ""
            if name == "1 proxy, 1 toxic"
            else (
                "   marginal "
                + " / ".join(f"{v - b:+.2f}" for v, b in zip(value, base, strict=True))
            )
        )
        print(f"  {name}: " + " / ".join(f"{v:.2f}" for v in value) + marginal)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tests", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--iterations", type=int, default=5)
    parser.add_argument("--toxiproxy", default=None, help="URL of an external Toxiproxy")
    parser.add_argument("--only", choices=("suite", "setup", "iteration"), default=None)
    parser.add_argument("--load", type=int, default=0, help="CPU-bound processes to run")
    args = parser.parse_args()
    burners = _start_load(args.load)
    print(f"{args.load} CPU-bound processes; load average {_load()}", flush=True)
    try:
        if args.only in (None, "suite"):
            suite_overhead(args.tests or 5000, args.repeats)
        if args.only in (None, "setup"):
            fault_setup_cost(args.rounds)
        if args.only in (None, "iteration"):
            iteration_cost(args.tests or 200, args.iterations, args.repeats, args.toxiproxy)
    finally:
        for burner in burners:
            burner.terminate()
    print(f"load average after the run: {_load()}")


def _burn() -> None:
    while True:
        pass


def _start_load(count: int) -> list[multiprocessing.Process]:
    burners = [multiprocessing.Process(target=_burn, daemon=True) for _ in range(count)]
    for burner in burners:
        burner.start()
    return burners


def _load() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


if __name__ == "__main__":
    main()
