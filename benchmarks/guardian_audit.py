"""Audit chain throughput: durable appends per second and verification time.

    python benchmarks/guardian_audit.py [--verify-entries 100000]

Every figure is compared with a peer measured in the same run on the same disk:
appends against plain SQLite inserts of the same rows with the same durability
(WAL, synchronous=FULL, one commit per transaction) but no chain; verification against
just reading the rows. Goals (issue 5): >= 5,000 durable appends/s, verify 100,000
entries in < 1 s.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

from pytest_rafael.guardian.audit import AuditLog, NewEntry
from pytest_rafael.store.core import Store

DETAILS = {
    "nodeid": "tests/test_payments.py::test_charge",
    "scenario": "db_failure",
    "faults": 3,
    "reverted": True,
}


def entry(i: int) -> NewEntry:
    return NewEntry("faults_injected", "ci-bot", "payments", f"c{i % 97:04d}", {**DETAILS, "i": i})


def bench_appends(root: Path, n: int, batch: int, key: bytes | None = None) -> float:
    path = root / f"append-{batch}-{bool(key)}.db"
    with Store(path) as store:
        log = AuditLog(store, key)
        start = time.perf_counter()
        if batch == 1:
            for i in range(n):
                e = entry(i)
                log.append(e.event_type, e.actor, e.module, e.change_id, e.details)
        else:
            for i in range(0, n, batch):
                log.append_many(entry(j) for j in range(i, i + batch))
        elapsed = time.perf_counter() - start
        assert log.verify().ok
    return n / elapsed


def bench_peer_inserts(root: Path, n: int, batch: int) -> float:
    """Same rows, same durability, no hash chain: the floor the chain adds to."""
    import json

    path = root / f"peer-{batch}.db"
    with Store(path) as store:
        store.ensure_schema(
            "CREATE TABLE IF NOT EXISTS plain (id INTEGER PRIMARY KEY, ts TEXT, ev TEXT,"
            " actor TEXT, module TEXT, change_id TEXT, details TEXT)"
        )
        start = time.perf_counter()
        for i in range(0, n, batch):
            with store.transaction() as conn:
                conn.executemany(
                    "INSERT INTO plain (ts, ev, actor, module, change_id, details)"
                    " VALUES (?,?,?,?,?,?)",
                    [
                        (
                            "2026-01-01T00:00:00+00:00",
                            e.event_type,
                            e.actor,
                            e.module,
                            e.change_id,
                            json.dumps(dict(e.details or {}), sort_keys=True),
                        )
                        for e in (entry(j) for j in range(i, i + batch))
                    ],
                )
        elapsed = time.perf_counter() - start
    return n / elapsed


def bench_verify(root: Path, n: int, key: bytes | None) -> tuple[float, float, float]:
    path = root / f"verify-{bool(key)}.db"
    with Store(path) as store:
        log = AuditLog(store, key)
        for i in range(0, n, 10_000):
            log.append_many(entry(j) for j in range(i, min(n, i + 10_000)))
        store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    with Store(path) as store:
        log = AuditLog(store, key)
        best_verify = best_read = best_cpu = float("inf")
        for _ in range(3):
            start, cpu = time.perf_counter(), time.process_time()
            result = log.verify()
            best_verify = min(best_verify, time.perf_counter() - start)
            best_cpu = min(best_cpu, time.process_time() - cpu)
            assert result.ok, result
            assert result.entries == n, result
            start = time.perf_counter()
            cur = store.conn.cursor()
            cur.row_factory = None
            cur.execute("SELECT * FROM audit ORDER BY id").fetchall()
            best_read = min(best_read, time.perf_counter() - start)
    return best_verify, best_read, best_cpu


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--appends", type=int, default=3000)
    ap.add_argument("--verify-entries", type=int, default=100_000)
    args = ap.parse_args()
    print(
        f"python {platform.python_version()}, {os.cpu_count()} cpus, load {os.getloadavg()[0]:.1f}"
    )
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as tmp:
        root = Path(tmp)
        print(f"{'durable appends':<44} {'entries/s':>10} {'peer/s':>10} {'ratio':>6}")
        for batch in (1, 10, 100, 1000):
            n = args.appends if batch == 1 else args.appends * 10
            rate = bench_appends(root, n, batch)
            peer = bench_peer_inserts(root, n, batch)
            label = "append() one commit each" if batch == 1 else f"append_many() {batch}/commit"
            print(f"{label:<44} {rate:>10,.0f} {peer:>10,.0f} {rate / peer:>6.2f}")
        rate = bench_appends(root, args.appends, 1, key=b"bench-key")
        print(f"{'append() one commit each, HMAC':<44} {rate:>10,.0f}")
        for key in (None, b"bench-key"):
            v, r, c = bench_verify(root, args.verify_entries, key)
            label = f"verify {args.verify_entries:,} entries" + (" + HMAC" if key else "")
            print(f"{label:<44} {v:>9.3f}s (cpu {c:.3f}s)  read only {r:.3f}s ({v / r:.1f}x)")


if __name__ == "__main__":
    main()
