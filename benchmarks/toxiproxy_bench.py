"""Benchmarks of the embedded Toxiproxy server, each against a peer measured in the same run.

    python benchmarks/toxiproxy_bench.py            # full run (about 30 s)
    python benchmarks/toxiproxy_bench.py --quick    # smaller sizes, fewer samples

(a) bulk throughput through a proxy with no toxics vs a direct loopback connection;
(b) added round-trip time of small request/response pairs (p50, p99) vs direct;
(c) accuracy of a 100 ms latency toxic (median added) and a 500 KB/s bandwidth toxic.

    python benchmarks/toxiproxy_bench.py --only connections [--real URL] [--load N]
    python benchmarks/toxiproxy_bench.py --only latency-tail [--real URL] [--load N]

(d) short connections per second (connect, one byte each way, close), through the
    embedded server, through a real Toxiproxy at ``--real URL`` when given, and direct;
(e) the latency toxic's tail: 100 ms upstream + 100 ms downstream, one round trip on each
    of ``--probes`` fresh connections; the overshoot beyond 200 ms + the direct round trip
    (direct probes interleaved), p50 to p99, embedded beside the real Toxiproxy, per round
    and pooled over ``--rounds``. ``--load N`` keeps N CPU-bound processes busy during (d)
    and (e), as on a loaded 2-core machine. Each figure is printed with the load average.

The upstream servers (sink and echo) run in a child process, the client and the proxy in
this one, as in a pytest run where the server lives in the test process.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import socket
import statistics
import tempfile
import threading
import time
from multiprocessing.connection import Connection as Pipe
from typing import BinaryIO

import requests

from pytest_rafael.toxiproxy import EmbeddedServer

CHUNK = 1 << 20


def _sink(conn: socket.socket) -> None:
    # Zero-copy discard (socket -> pipe -> /dev/null) so the sink is not the bottleneck.
    pipe_r, pipe_w = os.pipe()
    devnull = os.open(os.devnull, os.O_WRONLY)
    fd = conn.fileno()
    while n := os.splice(fd, pipe_w, CHUNK):
        while n:
            n -= os.splice(pipe_r, devnull, n)
    for extra in (pipe_r, pipe_w, devnull):
        os.close(extra)
    conn.sendall(b"done")  # after EOF: the client learns every byte arrived
    conn.close()


def _echo(conn: socket.socket) -> None:
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    while data := conn.recv(65536):
        conn.sendall(data)
    conn.close()


def _serve(kind: str, ready: Pipe) -> None:
    handler = _sink if kind == "sink" else _echo
    listener = socket.create_server(("127.0.0.1", 0))
    ready.send(listener.getsockname()[1])
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=handler, args=(conn,), daemon=True).start()


def start_upstream(kind: str) -> tuple[multiprocessing.Process, int]:
    parent, child = multiprocessing.Pipe()
    process = multiprocessing.Process(target=_serve, args=(kind, child), daemon=True)
    process.start()
    return process, int(parent.recv())


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def bulk_rate(port: int, total: int, source: BinaryIO) -> float:
    """Bytes per second from first send to the sink's confirmation of the last byte.

    The client sends a file with sendfile (zero-copy from the page cache) so that the
    measured rate is the path's, not the Python sender's.
    """
    size = os.fstat(source.fileno()).st_size
    with connect(port) as sock:
        start = time.perf_counter()
        sent = 0
        while sent < total:
            sent += sock.sendfile(source, 0, size)
        sock.shutdown(socket.SHUT_WR)
        assert sock.recv(4) == b"done"
        return sent / (time.perf_counter() - start)


def round_trips(port: int, count: int, size: int = 64) -> list[float]:
    message = b"r" * size
    times: list[float] = []
    with connect(port) as sock:
        for _ in range(count):
            start = time.perf_counter()
            sock.sendall(message)
            got = 0
            while got < size:
                got += len(sock.recv(65536))
            times.append(time.perf_counter() - start)
    return times


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def create_proxy(server: EmbeddedServer, name: str, upstream_port: int) -> int:
    response = requests.post(
        server.url + "/proxies",
        json={"name": name, "upstream": f"127.0.0.1:{upstream_port}"},
        timeout=10,
    )
    response.raise_for_status()
    return int(response.json()["listen"].rsplit(":", 1)[1])


def add_toxic(server: EmbeddedServer, proxy: str, body: dict[str, object]) -> None:
    requests.post(server.url + f"/proxies/{proxy}/toxics", json=body, timeout=10).raise_for_status()


def _burn() -> None:
    while True:
        pass


def start_load(count: int) -> list[multiprocessing.Process]:
    burners = [multiprocessing.Process(target=_burn, daemon=True) for _ in range(count)]
    for burner in burners:
        burner.start()
    return burners


def add_proxy(api: str, name: str, upstream_port: int) -> int:
    """A fresh proxy on the server at ``api`` (an earlier one of that name is removed)."""
    requests.delete(f"{api}/proxies/{name}", timeout=10)
    response = requests.post(
        api + "/proxies",
        json={"name": name, "upstream": f"127.0.0.1:{upstream_port}", "listen": "127.0.0.1:0"},
        timeout=10,
    )
    response.raise_for_status()
    return int(response.json()["listen"].rsplit(":", 1)[1])


def connection_rate(port: int, count: int) -> float:
    """Short connections per second, one after another: connect, 1 byte each way, close."""
    start = time.perf_counter()
    for _ in range(count):
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(b"c")
            if sock.recv(1) != b"c":
                raise RuntimeError("echo lost its byte")
    return count / (time.perf_counter() - start)


def one_round_trip(port: int) -> float:
    start = time.perf_counter()
    with connect(port) as sock:
        sock.sendall(b"l")
        if sock.recv(1) != b"l":
            raise RuntimeError("echo lost its byte")
    return time.perf_counter() - start


def peers(server: EmbeddedServer, real: str | None, name: str, port: int) -> dict[str, int]:
    found = {"embedded": add_proxy(server.url, name, port)}
    if real:
        found["real Toxiproxy"] = add_proxy(real, name, port)
    return found


def run_connections(real: str | None, count: int, repeats: int) -> None:
    echo, echo_port = start_upstream("echo")
    with EmbeddedServer() as server:
        targets = {"direct": echo_port, **peers(server, real, "conn_rate", echo_port)}
        for port in targets.values():
            connection_rate(port, 50)  # warm up
        rates: dict[str, list[float]] = {name: [] for name in targets}
        for _ in range(repeats):
            for name, port in targets.items():
                rates[name].append(connection_rate(port, count))
    echo.terminate()
    print(f"(d) short connections, {count} per round, median of {repeats} interleaved rounds:")
    direct = statistics.median(rates["direct"])
    for name, values in rates.items():
        rate = statistics.median(values)
        line = f"  {name:>15}: {rate:8.0f} /s  ({rate / direct:.2f}x direct)"
        if name == "embedded" and "real Toxiproxy" in rates:
            line += f", {rate / statistics.median(rates['real Toxiproxy']):.2f}x real"
        print(line)


def run_latency_tail(real: str | None, probes: int, rounds: int) -> None:
    echo, echo_port = start_upstream("echo")
    toxics = [
        {"name": "up", "type": "latency", "stream": "upstream", "attributes": {"latency": 100}},
        {"name": "down", "type": "latency", "stream": "downstream", "attributes": {"latency": 100}},
    ]
    with EmbeddedServer() as server:
        targets = peers(server, real, "latency_tail", echo_port)
        apis = {"embedded": server.url, "real Toxiproxy": real}
        for name in targets:
            for toxic in toxics:
                requests.post(
                    f"{apis[name]}/proxies/latency_tail/toxics", json=toxic, timeout=10
                ).raise_for_status()
        pooled: dict[str, list[float]] = {name: [] for name in targets}
        for number in range(1, rounds + 1):
            over = _latency_round(targets, echo_port, probes)
            _print_tail(f"round {number}/{rounds}", over)
            for name, values in over.items():
                pooled[name].extend(values)
        if rounds > 1:
            _print_tail(f"all {rounds} rounds pooled", pooled)
        for name in targets:
            requests.delete(f"{apis[name]}/proxies/latency_tail", timeout=10)
    echo.terminate()


def _latency_round(targets: dict[str, int], echo_port: int, probes: int) -> dict[str, list[float]]:
    """Overshoots beyond 200 ms + the direct round trip, direct probes interleaved too."""
    direct: list[float] = []
    raw: dict[str, list[float]] = {name: [] for name in targets}
    for _ in range(probes):  # interleaved, so load changes hit every peer alike
        direct.append(one_round_trip(echo_port))
        for name, port in targets.items():
            raw[name].append(one_round_trip(port))
    base = statistics.median(direct) + 0.200
    return {name: [value - base for value in values] for name, values in raw.items()}


def _print_tail(title: str, over: dict[str, list[float]]) -> None:
    count = len(next(iter(over.values())))
    print(
        f"(e) latency 100 ms up + 100 ms down, {title}: {count} fresh connections each; "
        f"overshoot beyond 200 ms + the direct round trip; load average {_load()}"
    )
    for name, values in over.items():
        print(
            f"  {name:>15}: p50 {percentile(values, 0.5) * 1e3:6.2f} ms   "
            f"p90 {percentile(values, 0.9) * 1e3:6.2f} ms   "
            f"p99 {percentile(values, 0.99) * 1e3:6.2f} ms   "
            f"max {max(values) * 1e3:6.2f} ms"
        )
    if "real Toxiproxy" in over:
        ratio = percentile(over["embedded"], 0.99) / percentile(over["real Toxiproxy"], 0.99)
        print(f"  p99 overshoot embedded / real: {ratio:.2f}x")


def _load() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, fewer samples")
    parser.add_argument("--only", choices=("core", "connections", "latency-tail"))
    parser.add_argument("--real", default=None, help="API URL of a real Toxiproxy")
    parser.add_argument("--load", type=int, default=0, help="CPU-bound processes to run")
    parser.add_argument("--connections", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--probes", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=1, help="latency-tail rounds to pool")
    args = parser.parse_args()
    burners = start_load(args.load)
    if args.load:
        print(f"load: {args.load} CPU-bound processes on {os.cpu_count()} cores")
    try:
        if args.only in (None, "connections"):
            run_connections(args.real, args.connections, args.repeats)
        if args.only in (None, "latency-tail"):
            run_latency_tail(args.real, args.probes, args.rounds)
    finally:
        for burner in burners:
            burner.terminate()
    if args.only in (None, "core"):
        run_core(args.quick)


def run_core(quick: bool) -> None:
    total = (256 if quick else 1024) * CHUNK
    rounds = 1000 if quick else 5000
    repeats = 2 if quick else 3

    sink, sink_port = start_upstream("sink")
    echo, echo_port = start_upstream("echo")
    with EmbeddedServer() as server:
        bulk_proxy = create_proxy(server, "bulk", sink_port)
        rtt_proxy = create_proxy(server, "rtt", echo_port)
        lat_proxy = create_proxy(server, "latency", echo_port)
        bw_proxy = create_proxy(server, "bandwidth", sink_port)

        # (a) throughput: best of N each, interleaved so load changes hit both alike.
        direct_rates, proxy_rates = [], []
        with tempfile.TemporaryFile() as data:
            data.write(os.urandom(32 * CHUNK))
            data.flush()
            for _ in range(repeats):
                direct_rates.append(bulk_rate(sink_port, total, data))
                proxy_rates.append(bulk_rate(bulk_proxy, total, data))
        direct_bulk, proxy_bulk = max(direct_rates), max(proxy_rates)

        # (b) small request/response round trips.
        round_trips(echo_port, 200)  # warm up
        round_trips(rtt_proxy, 200)
        direct_rtt = round_trips(echo_port, rounds)
        proxy_rtt = round_trips(rtt_proxy, rounds)

        # (c) toxic accuracy.
        add_toxic(server, "latency", {"type": "latency", "attributes": {"latency": 100}})
        latency_rtt = round_trips(lat_proxy, 30)
        add_toxic(
            server,
            "bandwidth",
            {"type": "bandwidth", "stream": "upstream", "attributes": {"rate": 500}},
        )
        bw_bytes = 1_000_000
        bw_rate = bulk_rate_exact(bw_proxy, bw_bytes)

    sink.terminate()
    echo.terminate()

    gb = 1e9
    d50, d99 = percentile(direct_rtt, 0.5), percentile(direct_rtt, 0.99)
    p50, p99 = percentile(proxy_rtt, 0.5), percentile(proxy_rtt, 0.99)
    added_latency = statistics.median(latency_rtt) - d50
    print(f"cpus: {os.cpu_count()}  bulk: {total // CHUNK} MiB x {repeats}  rtt: {rounds}")
    print("| measure | direct | through proxy | ratio / added |")
    print("|---|---|---|---|")
    print(
        f"| (a) bulk throughput, no toxics | {direct_bulk / gb:.2f} GB/s | "
        f"{proxy_bulk / gb:.2f} GB/s | {proxy_bulk / direct_bulk:.2f}x |"
    )
    print(
        f"| (b) round trip p50, 64 B | {d50 * 1e6:.0f} µs | {p50 * 1e6:.0f} µs | "
        f"+{(p50 - d50) * 1e6:.0f} µs |"
    )
    print(
        f"| (b) round trip p99, 64 B | {d99 * 1e6:.0f} µs | {p99 * 1e6:.0f} µs | "
        f"+{(p99 - d99) * 1e6:.0f} µs |"
    )
    print(
        f"| (c) latency toxic 100 ms, median added | - | {added_latency * 1e3:.2f} ms | "
        f"error {abs(added_latency * 1e3 - 100):.2f} ms |"
    )
    print(
        f"| (c) bandwidth toxic 500 KB/s, delivered | - | {bw_rate / 1e3:.1f} KB/s | "
        f"error {abs(bw_rate / 500e3 - 1) * 100:.2f} % |"
    )


def bulk_rate_exact(port: int, total: int) -> float:
    """Like :func:`bulk_rate` but sends exactly ``total`` bytes."""
    with connect(port) as sock:
        start = time.perf_counter()
        sock.sendall(b"w" * total)
        sock.shutdown(socket.SHUT_WR)
        assert sock.recv(4) == b"done"
        return total / (time.perf_counter() - start)


if __name__ == "__main__":
    main()
