"""The flood's achievable rate and its accuracy, against peers measured in the same run.

    python benchmarks/flood_bench.py [--seconds S] [--rates 1000,2000,5000]

A minimal asyncio HTTP/1.1 server runs in its own process and counts what it receives.
For each requested rate one flood (``start_flood``, small ``GET`` requests, keep-alive,
32 connections) runs for ``--seconds``; the table shows the achieved rate reported by the
flood, the requests the server really answered, their ratio to the requested rate, and
the latency percentiles. Peers in the same run:

- the requested rate itself (accuracy: achieved / requested, goal 0.9 to 1.0 up to 5000/s);
- the ceiling: the same flood asked for 50,000/s, i.e. as fast as the child can go;
- ``connection: new`` at 1000/s (a TCP connection per request).

Exits 1 when a rate up to 5000/s is off by more than 10 %.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from typing import Any

from pytest_rafael.faults.flood import parse_address, start_flood

SERVER = r"""
import asyncio, signal, sys
count = 0
class P(asyncio.Protocol):
    def connection_made(self, t):
        self.t, self.b = t, b""
    def data_received(self, d):
        global count
        self.b += d
        while b"\r\n\r\n" in self.b:
            _, self.b = self.b.split(b"\r\n\r\n", 1)
            count += 1
            self.t.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
async def main():
    loop = asyncio.get_running_loop()
    server = await loop.create_server(P, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    done = asyncio.Event()
    loop.add_signal_handler(signal.SIGUSR1, lambda: print(count, flush=True))
    loop.add_signal_handler(signal.SIGTERM, done.set)
    await done.wait()
asyncio.run(main())
"""


class Server:
    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None
        self.port = int(self.proc.stdout.readline())

    def count(self) -> int:
        os.kill(self.proc.pid, signal.SIGUSR1)
        assert self.proc.stdout is not None
        return int(self.proc.stdout.readline())

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def run(server: Server, rate: float, seconds: float, **extra: Any) -> dict[str, Any]:
    before = server.count()
    flood = start_flood(
        parse_address(f"http://127.0.0.1:{server.port}/"),
        {"rate": rate, "concurrency": 32, **extra},
        target="bench",
    )
    time.sleep(seconds)
    observed = flood.stop()
    observed["served"] = server.count() - before
    return observed


def line(label: str, rate: float, obs: dict[str, Any]) -> str:
    elapsed = obs["elapsed_s"]
    served_rps = obs["served"] / elapsed
    lat = obs.get("latency_ms", {})
    return (
        f"| {label} | {rate:,.0f} | {obs['achieved_rps']:,.0f} | {served_rps:,.0f} | "
        f"{obs['achieved_rps'] / rate:.3f} | {obs['errors']} | "
        f"{lat.get('p50', 0):.2f} / {lat.get('p99', 0):.2f} |"
    )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rates", default="500,1000,2000,5000")
    args = parser.parse_args()
    rates = [float(r) for r in args.rates.split(",")]
    server = Server()
    bad = []
    try:
        print(
            "| flood | requested/s | achieved/s | served/s | achieved/requested | errors "
            "| latency p50 / p99 ms |"
        )
        print("|---|---|---|---|---|---|---|")
        for rate in rates:
            obs = run(server, rate, args.seconds)
            print(line("keep-alive", rate, obs), flush=True)
            if rate <= 5000 and not 0.9 <= obs["achieved_rps"] / rate <= 1.0:
                bad.append(rate)
        print(line("ceiling", 50_000, run(server, 50_000, args.seconds)), flush=True)
        new = run(server, 1000, args.seconds, connection="new")
        print(line("new connections", 1000, new), flush=True)
    finally:
        server.close()
    if bad:
        print(f"FAIL: achieved rate off by more than 10 % at {bad}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
