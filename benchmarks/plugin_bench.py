"""Plugin overhead and fault set-up cost, each against a peer measured in the same run.

1. A suite of 5,000 trivial tests with pytest-rafael installed and --rafael-chaos off,
   against the same suite with ``-p no:rafael``. Interleaved repeats; medians compared.
2. Applying and reverting one toxic per iteration (the injector's start + stop) on the
   embedded server, against a bare HTTP round trip to the same server.

Run: python benchmarks/plugin_bench.py [--tests 5000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
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
    from pytest_rafael.scenarios import FaultSpec, Scenario
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tests", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    suite_overhead(args.tests, args.repeats)
    fault_setup_cost(args.rounds)


if __name__ == "__main__":
    main()
