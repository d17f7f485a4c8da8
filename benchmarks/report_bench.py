"""Report rendering benchmark: a run of 10,000 iterations must render in under 3 s to an
index.html under 5 MB.

Peer (same process, same data): ``json.dumps(results, indent=2)``, the results.json the
report writes anyway, so the ratio says what the HTML costs on top of the raw data.
Three shapes of 10,000 iterations: one test with all of them, 2,000 tests of 5 (the
many-tests case), and 100 tests of 100 with 20 earlier runs of history.

    python benchmarks/report_bench.py
    python benchmarks/report_bench.py --process [--rounds 10] [--load 2]

``--process`` times ``rafael report`` as a whole process (interpreter start, imports,
reading the store, writing the four files) on a store of 21 runs x 10,000 iterations,
every round printed (the goal is every round under 3 s, not the median), beside a peer
process in the same rounds that only opens the store and parses the latest run's
document, in two forms: the query as first written (``ORDER BY started_at DESC LIMIT 1``,
which has SQLite sort every row with its document: it reads all 21) and the latest
document fetched by rowid (parsing it is then nearly all of its cost). ``--load N`` keeps
N CPU-bound processes busy meanwhile. Compiled bytecode is cached, as on a developer's
machine (this one sets PYTHONDONTWRITEBYTECODE, which made every round recompile the
modules), and each round prints the load average.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pytest_rafael.report import cli as report_cli
from pytest_rafael.report import write_reports
from pytest_rafael.report.html import render_html
from pytest_rafael.results import (
    Delta,
    FaultRecord,
    Gate,
    IterationResult,
    RunResult,
    TestResult,
)
from pytest_rafael.store.core import Store

REPEAT = 3
LIMIT_S = 3.0
LIMIT_MB = 5.0


def build_run(tests: int, per_test: int, run_no: int = 0, seed: int = 1) -> dict[str, Any]:
    rng = random.Random(seed + run_no)
    out = []
    for t in range(tests):
        nodeid = f"tests/test_service_{t % 40}.py::test_call_{t}[case-{t}]"
        scenario = ("latency_spike", "db_failure", "cpu_starvation", "memory_pressure")[t % 4]
        module = f"module_{t % 12}"
        its = []
        for n in range(per_test):
            ok = rng.random() < 0.7
            timeout = round(rng.uniform(0.5, 30), 2)
            its.append(
                IterationResult(
                    nodeid=nodeid,
                    scenario=scenario,
                    index=n,
                    outcome="passed" if ok else "failed",
                    duration_s=round(rng.uniform(0.05, 3.0), 3),
                    module=module,
                    severity="high",
                    genome={
                        "module": module,
                        "generation": n,
                        "genes": {
                            "retry": {
                                "max_attempts": rng.randint(1, 6),
                                "base_delay": 0.05,
                                "max_delay": 1.0,
                                "multiplier": 2.0,
                                "jitter": 0.1,
                            },
                            "circuit_breaker": {
                                "failure_threshold": 5,
                                "reset_timeout": 30.0,
                                "half_open_max_calls": 1,
                            },
                            "timeout": {"seconds": timeout},
                        },
                    },
                    fitness=round(rng.random(), 4),
                    fitness_terms={
                        "success_rate": 1.0 if ok else 0.0,
                        "recovery_speed": 0.5,
                        "resource_efficiency": 0.8,
                    },
                    faults=(
                        FaultRecord(
                            kind="toxic",
                            target="db",
                            type="latency",
                            attributes={"latency": 500, "jitter": 50},
                            stream="downstream",
                            toxicity=1.0,
                            applied_at_s=0.0,
                            reverted_at_s=1.2,
                        ),
                        FaultRecord(
                            kind="stress",
                            target="cpu",
                            type="cpu",
                            attributes={"percent": 80},
                            applied_at_s=0.0,
                            reverted_at_s=1.2,
                            observed={"cpu_percent": 77.9},
                        ),
                    ),
                    metrics={"requests": 12},
                    runtime={"retries": 2},
                    error=None if ok else "TimeoutError: timed out after 30.0 s",
                    worker=f"gw{n % 2}",
                )
            )
        out.append(
            TestResult(
                nodeid=nodeid,
                scenario=scenario,
                severity="high",
                module=module,
                iterations=tuple(its),
                baseline_fitness=0.3,
                best_fitness=max(i.fitness or 0 for i in its),
                best_genome=its[-1].genome,
                adopted=t % 3 == 0,
                proposal_id=f"P-{t}" if t % 3 == 0 else None,
                min_fitness=0.7,
            )
        )
    run = RunResult(
        run_id=f"run-{run_no:04d}",
        started_at=f"2026-11-{1 + run_no:02d}T10:00:00Z",
        finished_at=f"2026-11-{1 + run_no:02d}T10:30:00Z",
        duration_s=1800.0,
        seed=seed,
        chaos=True,
        toxiproxy_url="http://127.0.0.1:8474",
        actor="ci",
        tests=tuple(out),
        delta=Delta(0.3, 0.7, 133.3, ("db_failure",), ()),
        gate=Gate(0.7, True, ()),
    )
    return run.to_dict()


def measure(name: str, results: dict[str, Any], history: list[dict[str, Any]]) -> dict[str, Any]:
    render, cpu, total, total_cpu, floor = [], [], [], [], []
    size = json_size = 0
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(REPEAT):
            t0 = time.perf_counter()
            json.dumps(results, indent=2, default=str)
            floor.append(time.perf_counter() - t0)
            t0, c0 = time.perf_counter(), time.process_time()
            page = render_html(results, history)
            render.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
            t0, c0 = time.perf_counter(), time.process_time()
            paths = write_reports(results, Path(tmp), history)
            total.append(time.perf_counter() - t0)
            total_cpu.append(time.process_time() - c0)
            size = len(page.encode())
            json_size = paths.results_json.stat().st_size
    r, c, w, wc, f = (statistics.median(x) for x in (render, cpu, total, total_cpu, floor))
    return {
        "shape": name,
        "render_s": r,
        "cpu_s": c,
        "total_s": w,
        "total_cpu_s": wc,
        "json_s": f,
        "ratio": w / f,
        "html_mb": size / 1e6,
        "json_mb": json_size / 1e6,
        "ok": w < LIMIT_S and size / 1e6 < LIMIT_MB,
    }


def main() -> int:
    shapes = [
        ("1 test x 10,000 iterations", build_run(1, 10_000), []),
        ("2,000 tests x 5 iterations", build_run(2_000, 5), []),
        (
            "100 tests x 100 iterations + 20 runs of history",
            build_run(100, 100, 20),
            [build_run(100, 100, n) for n in range(20)],
        ),
    ]
    print(
        f"median of {REPEAT} (seconds, wall and CPU of this process); html = render_html "
        "(index.html only); all = write_reports (index.html, results.json, summary.md, "
        "metrics.prom); peer = json.dumps(results, indent=2) of the same dict"
    )
    print(
        f"{'shape':48} {'html':>5} {'cpu':>5} {'all':>5} {'cpu':>5} {'peer':>5} "
        f"{'all/peer':>8} {'html MB':>7} {'json MB':>7}  goal: all <{LIMIT_S} s, "
        f"html <{LIMIT_MB} MB"
    )
    ok = True
    for name, results, history in shapes:
        m = measure(name, results, history)
        ok &= m["ok"]
        print(
            f"{m['shape']:48} {m['render_s']:5.2f} {m['cpu_s']:5.2f} {m['total_s']:5.2f} "
            f"{m['total_cpu_s']:5.2f} {m['json_s']:5.2f} {m['ratio']:8.2f} "
            f"{m['html_mb']:7.2f} {m['json_mb']:7.2f}  {'met' if m['ok'] else 'MISSED'}"
        )
    ok &= measure_cli(shapes[2][1], shapes[2][2])
    return 0 if ok else 1


def measure_cli(results: dict[str, Any], history: list[dict[str, Any]]) -> bool:
    """`rafael report` on a store of 21 runs of 10,000 iterations; peer: Store.runs(),
    which parses every stored document (what a naive regeneration would do first)."""
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "rafael.db"
        with Store(db) as store:
            for run in [*history, results]:
                store.save_run(run)
        parser = argparse.ArgumentParser()
        report_cli.register(parser.add_subparsers(), parser)
        args = parser.parse_args(["--store", str(db), "--out", str(Path(tmp) / "out")])
        walls, cpus, peers = [], [], []
        for _ in range(REPEAT):
            t0, c0 = time.perf_counter(), time.process_time()
            with contextlib.redirect_stdout(io.StringIO()):
                args.func(args)
            walls.append(time.perf_counter() - t0)
            cpus.append(time.process_time() - c0)
            t0 = time.perf_counter()
            with Store(db) as store:
                store.runs()
            peers.append(time.perf_counter() - t0)
    w, c, p = (statistics.median(x) for x in (walls, cpus, peers))
    print(
        f"{'rafael report, store of 21 such runs':48} {'':5} {'':5} {w:5.2f} {c:5.2f} "
        f"{p:5.2f} {w / p:8.2f}  (peer: Store.runs())  {'met' if w < LIMIT_S else 'MISSED'}"
    )
    return w < LIMIT_S


_PEER = (
    "import json, sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
    "json.loads(c.execute('SELECT results_json FROM runs ORDER BY started_at DESC, rowid DESC"
    " LIMIT 1').fetchone()[0])"
)
_PEER_BY_ROWID = (
    "import json, sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
    "json.loads(c.execute('SELECT results_json FROM runs WHERE rowid ="
    " (SELECT max(rowid) FROM runs)').fetchone()[0])"
)


def _burn() -> None:
    while True:
        pass


def _run_timed(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the child) of one process run to completion."""
    import resource
    import subprocess

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, env=env)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def measure_process(rounds: int, load: int) -> bool:
    import multiprocessing
    import subprocess

    results, history = build_run(100, 100, 20), [build_run(100, 100, n) for n in range(20)]
    burners = [multiprocessing.Process(target=_burn, daemon=True) for _ in range(load)]
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "rafael.db"
        with Store(db) as store:
            for run in [*history, results]:
                store.save_run(run)
        del results, history
        report = [
            sys.executable,
            "-m",
            "pytest_rafael.cli",
            "report",
            "--store",
            str(db),
            "--out",
            str(Path(tmp) / "out"),
        ]
        peer = [sys.executable, "-c", _PEER, str(db)]
        peer_by_rowid = [sys.executable, "-c", _PEER_BY_ROWID, str(db)]
        env = {**os.environ, "PYTHONPYCACHEPREFIX": str(Path(tmp) / "pycache")}
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        subprocess.run(report, check=True, capture_output=True, env=env)  # warm caches
        for burner in burners:
            burner.start()
        walls: list[float] = []
        peers: list[float] = []
        cpus: list[float] = []
        peer_cpus: list[float] = []
        rowid_cpus: list[float] = []
        try:
            for n in range(rounds):
                wall, cpu = _run_timed(report, env)
                walls.append(wall)
                cpus.append(cpu)
                peer_wall, peer_cpu = _run_timed(peer, env)
                peers.append(peer_wall)
                peer_cpus.append(peer_cpu)
                rowid_wall, rowid_cpu = _run_timed(peer_by_rowid, env)
                rowid_cpus.append(rowid_cpu)
                print(
                    f"round {n + 1}: rafael report {wall:.2f} s ({cpu:.2f} s CPU), "
                    f"peer {peer_wall:.2f} s ({peer_cpu:.2f} s CPU), peer by rowid "
                    f"{rowid_wall:.2f} s ({rowid_cpu:.2f} s CPU); load average "
                    + " ".join(f"{v:.2f}" for v in os.getloadavg()),
                    flush=True,
                )
        finally:
            for burner in burners:
                burner.terminate()
    print(
        f"CPU medians: rafael report {statistics.median(cpus):.2f} s, peer "
        f"{statistics.median(peer_cpus):.2f} s, peer by rowid {statistics.median(rowid_cpus):.2f} s"
    )
    worst, median = max(walls), statistics.median(walls)
    print(
        f"rafael report as a process, 21 runs x 10,000 iterations, {rounds} rounds, "
        f"{load} CPU-bound processes: median {median:.2f} s, worst {worst:.2f} s; peer "
        f"median {statistics.median(peers):.2f} s (ratio {median / statistics.median(peers):.2f})"
        f"  {'met' if worst < LIMIT_S else 'MISSED'} (every round < {LIMIT_S:g} s)"
    )
    return worst < LIMIT_S


if __name__ == "__main__":
    if "--process" in sys.argv:
        cli = argparse.ArgumentParser()
        cli.add_argument("--process", action="store_true")
        cli.add_argument("--rounds", type=int, default=10)
        cli.add_argument("--load", type=int, default=0)
        opts = cli.parse_args()
        sys.exit(0 if measure_process(opts.rounds, opts.load) else 1)
    sys.exit(main())
