"""8 concurrent writer processes, each appending runs and audit entries, against the
PostgreSQL store and, as the peer on the same machine in the same run, the SQLite store.

Each writer waits for a common start signal, then per round saves one run (one results
document with 5 result rows, as ``store.save_run`` does at the end of a chaos run) and
appends one audit entry (``AuditLog.append``, one durable transaction each: the slow
path; the plugin batches a run's entries). Reported per backend: rounds/s and audit
appends/s over the wall time from the signal to the last writer's end, and p50/p99
latency of each kind of append. Then the chain is verified: every entry present, ids
1..N with no gap, one chain.

The PostgreSQL server is a private cluster started here (``pytest_rafael.servers``),
switched to ``fsync = on`` and ``full_page_writes = on`` so that its commits are as
durable as the SQLite store's (``synchronous = FULL``).

Usage: ``python benchmarks/store_writers_bench.py [--writers 8] [--appends 10000]``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import quantiles
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

WRITER = """
import json, sys, time
from pathlib import Path
from pytest_rafael.guardian.audit import AuditLog
from pytest_rafael.store.core import Store, is_store_url

target, name, rounds, go = sys.argv[1], sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
store = Store(target if is_store_url(target) else Path(target))
log = AuditLog(store)
tests = [{"nodeid": f"t.py::test_{k}", "scenario": "db_failure", "module": "m",
          "severity": "high", "success_rate": 0.9, "baseline_fitness": 0.5,
          "best_fitness": 0.6, "adopted": False, "proposal_id": None} for k in range(5)]
while not go.exists():
    time.sleep(0.001)
run_lat, audit_lat = [], []
start = time.time()
for i in range(rounds):
    run_id = f"{name}-{i:05d}"
    t0 = time.perf_counter()
    store.save_run({"run_id": run_id, "started_at": run_id, "finished_at": run_id, "seed": i,
                    "chaos": True, "actor": name, "tests": tests}, run_group="bench")
    t1 = time.perf_counter()
    log.append("run_finished", name, details={"run_id": run_id})
    t2 = time.perf_counter()
    run_lat.append(t1 - t0)
    audit_lat.append(t2 - t1)
end = time.time()
store.close()
print(json.dumps({"start": start, "end": end, "run": run_lat, "audit": audit_lat}))
"""


def _writers(target: str, writers: int, rounds: int, work: Path) -> dict[str, Any]:
    go = work / f"go-{time.monotonic_ns()}"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, target, f"w{n}", str(rounds), str(go)],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        for n in range(writers)
    ]
    time.sleep(1.0)  # every writer imported and waiting
    go.touch()
    results = []
    for p in procs:
        out, _ = p.communicate(timeout=3600)
        if p.returncode != 0:
            raise SystemExit(f"a writer failed (exit {p.returncode})")
        results.append(json.loads(out))
    wall = max(r["end"] for r in results) - min(r["start"] for r in results)
    runs = [x for r in results for x in r["run"]]
    audits = [x for r in results for x in r["audit"]]
    return {"wall": wall, "run": runs, "audit": audits}


def _verify(target: str) -> tuple[bool, int, bool]:
    from pytest_rafael.common.store_url import is_store_url
    from pytest_rafael.guardian.audit import AuditLog
    from pytest_rafael.store.core import Store

    with Store(target if is_store_url(target) else Path(target)) as store:
        log = AuditLog(store)
        result = log.verify()
        ids = [e.id for e in log.entries()]
    return result.ok, result.entries, ids == list(range(1, len(ids) + 1))


def _pct(values: list[float], q: int) -> float:
    return quantiles(values, n=100)[q - 1] * 1000


def _row(name: str, m: dict[str, Any], appends: int) -> str:
    return (
        f"| {name} | {appends / m['wall']:,.0f}/s | {_pct(m['run'], 50):.2f} ms | "
        f"{_pct(m['run'], 99):.2f} ms | {_pct(m['audit'], 50):.2f} ms | "
        f"{_pct(m['audit'], 99):.2f} ms | {m['wall']:.1f} s |"
    )


def main() -> None:
    from pytest_rafael.servers import postgres_server
    from pytest_rafael.store.core import Store

    ap = argparse.ArgumentParser()
    ap.add_argument("--writers", type=int, default=8)
    ap.add_argument("--appends", type=int, default=10_000, help="audit appends in all")
    args = ap.parse_args()
    rounds = args.appends // args.writers
    total = rounds * args.writers
    work = Path(tempfile.mkdtemp(prefix="rafael-store-bench-"))
    sqlite_target = str(work / "rafael.db")
    Store(Path(sqlite_target)).close()
    with postgres_server() as server:
        import psycopg

        with psycopg.connect(server.url, autocommit=True) as conn:
            conn.execute("ALTER SYSTEM SET fsync = on")
            conn.execute("ALTER SYSTEM SET full_page_writes = on")
            conn.execute("SELECT pg_reload_conf()")
            conn.execute("CREATE DATABASE bench")
        pg_target = f"postgresql://{server.user}@{server.host}:{server.port}/bench"
        Store(pg_target).close()
        measured = {}
        for name, target in (("SQLite", sqlite_target), ("PostgreSQL", pg_target)):
            measured[name] = _writers(target, args.writers, rounds, work)
            ok, entries, gapless = _verify(target)
            measured[name]["chain"] = (ok, entries, gapless)
    print(
        f"{args.writers} writer processes, {rounds} rounds each: {total} runs "
        f"(5 result rows each) and {total} audit appends per backend\n"
    )
    print(
        "| backend | audit appends (and runs) per second | save_run p50 | save_run p99 | "
        "audit append p50 | audit append p99 | wall |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, m in measured.items():
        print(_row(name, m, total))
    print()
    for name, m in measured.items():
        ok, entries, gapless = m["chain"]
        print(
            f"{name}: chain verified={ok}, entries={entries} (expected {total}), "
            f"ids 1..{entries} without a gap={gapless}"
        )
    ratio = (total / measured["PostgreSQL"]["wall"]) / (total / measured["SQLite"]["wall"])
    print(f"\nthroughput PostgreSQL / SQLite: {ratio:.2f}x")


if __name__ == "__main__":
    main()
