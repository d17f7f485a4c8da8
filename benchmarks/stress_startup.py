"""Stressor start-up, stop and accuracy, against peers measured in the same run.

    python benchmarks/stress_startup.py [--repeat N]

- start-up: ``start_stressor("cpu", ...)`` until the load is in place, against the floor of
  any child program: ``python -c`` (and ``python -S -c``) printing one line (ratio).
- stop: ``Stressor.stop()`` (graceful stop, group kill, reap) against ``Popen.kill()+wait()``.
- accuracy: achieved CPU % (measured by the parent with psutil) against the target, and
  the demanded % (time on a CPU + time runnable but waiting): on a busy machine the
  scheduler decides what is achieved, the demand shows the stressor asked for its target.
- memory: time until N MB are resident (parent-confirmed RSS).
- disk: bytes/s written with and without fsync.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psutil

from pytest_rafael.faults.stress import start_stressor
from pytest_rafael.faults.stress_limits import StressLimits

LIMITS = StressLimits(memory_share=0.5, max_disk_mb=64)


def _median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def _first_line(flags: list[str]) -> float:
    t = time.perf_counter()
    p = subprocess.Popen(
        [sys.executable, *flags, "-c", "import time; print('ready', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE,
    )
    assert p.stdout is not None
    p.stdout.readline()
    elapsed = time.perf_counter() - t
    p.kill()
    p.wait()
    p.stdout.close()
    return elapsed


def bench_startup(repeat: int) -> tuple[float, float, float, float, float]:
    peer_start, bare_start, peer_stop, ours_start, ours_stop = [], [], [], [], []
    for _ in range(repeat):
        bare_start.append(_first_line(["-S"]))
        t = time.perf_counter()
        p = subprocess.Popen(
            [sys.executable, "-c", "import sys, time; print('ready', flush=True); time.sleep(60)"],
            stdout=subprocess.PIPE,
        )
        assert p.stdout is not None
        p.stdout.readline()
        peer_start.append(time.perf_counter() - t)
        t = time.perf_counter()
        p.kill()
        p.wait()
        p.stdout.close()
        peer_stop.append(time.perf_counter() - t)

        t = time.perf_counter()
        s = start_stressor("cpu", {"percent": 1}, LIMITS)
        ours_start.append(time.perf_counter() - t)
        t = time.perf_counter()
        s.stop()
        ours_stop.append(time.perf_counter() - t)
    return (
        _median_ms(peer_start),
        _median_ms(bare_start),
        _median_ms(ours_start),
        _median_ms(peer_stop),
        _median_ms(ours_stop),
    )


def _demand_s(pids: list[int]) -> float:
    """Seconds on a CPU plus seconds runnable but waiting (Linux schedstat); -1 elsewhere."""
    total = 0.0
    for pid in pids:
        try:
            on_cpu, waiting, _ = Path(f"/proc/{pid}/schedstat").read_text().split()
        except OSError:
            return -1.0
        total += (int(on_cpu) + int(waiting)) / 1e9
    return total


def bench_accuracy(seconds: float) -> list[tuple[int, int, float, float]]:
    """Achieved CPU % (what the scheduler granted) and demanded % (granted + waited for)."""
    rows = []
    for cores, percent in [(1, 25), (1, 50), (1, 75), (2, 50)]:
        with start_stressor("cpu", {"percent": percent, "cores": cores}, LIMITS) as s:
            workers = [p.pid for p in psutil.Process(s.pid).children()]
            d0, t0 = _demand_s(workers), time.monotonic()
            time.sleep(seconds)
            demand = 100 * (_demand_s(workers) - d0) / (time.monotonic() - t0) / cores
        rows.append((cores, percent, float(s.observed["cpu_percent"]), demand))
    return rows


def bench_memory(mb: int) -> tuple[float, float]:
    t = time.perf_counter()
    with start_stressor("memory", {"mb": mb}, LIMITS) as s:
        ready = time.perf_counter() - t
    return ready, float(s.observed["rss_mb"])


def bench_disk(seconds: float) -> list[tuple[bool, float, int]]:
    rows = []
    for fsync in (True, False):
        with start_stressor("disk", {"mb": 16, "fsync": fsync}, LIMITS) as s:
            time.sleep(seconds)
        obs = s.observed
        rows.append((fsync, obs["bytes_written"] / obs["duration_s"] / 2**20, obs["fsyncs"]))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    print(f"cores: {os.cpu_count()}, load average at start: {os.getloadavg()[0]:.1f}")

    peer_start, bare_start, ours_start, peer_stop, ours_stop = bench_startup(args.repeat)
    print(f"start-up, median of {args.repeat}:")
    print(f"  python -c child, first line read : {peer_start:7.1f} ms")
    print(f"  python -S -c child (no site)      : {bare_start:7.1f} ms")
    print(
        f"  start_stressor('cpu') ready       : {ours_start:7.1f} ms"
        f"  (ratio {ours_start / peer_start:.2f} vs python -c,"
        f" {ours_start / bare_start:.2f} vs python -S -c)"
    )
    print("stop, median:")
    print(f"  Popen.kill()+wait()               : {peer_stop:7.1f} ms")
    print(
        f"  Stressor.stop()                   : {ours_stop:7.1f} ms"
        f"  (ratio {ours_stop / peer_stop:.2f})"
    )
    print("cpu over 2 s, per core: achieved (psutil) / demanded (on cpu + runnable, schedstat):")
    for cores, percent, achieved, demand in bench_accuracy(2.0):
        print(f"  {cores} core(s) at {percent:3d} %  -> {achieved:5.1f} % / {demand:5.1f} %")
    ready, rss = bench_memory(512)
    print(f"memory: 512 MB resident in {ready * 1000:.0f} ms (peak RSS {rss:.1f} MB)")
    print("disk over 2 s, 16 MB file, 64 KiB blocks:")
    for fsync, mbps, fsyncs in bench_disk(2.0):
        print(f"  fsync={fsync!s:5}: {mbps:8.1f} MB/s, {fsyncs} fsyncs")
    print(f"load average at end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
