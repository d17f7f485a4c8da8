"""``rafael toxiproxy serve`` and ``python -m pytest_rafael.toxiproxy``."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType

from pytest_rafael.errors import RafaelError
from pytest_rafael.toxiproxy.errors import ApiError
from pytest_rafael.toxiproxy.server import EmbeddedServer


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address of the HTTP API (default 127.0.0.1: loopback only)",
    )
    parser.add_argument("--port", type=int, default=8474, help="API port (default 8474)")
    parser.add_argument(
        "--config",
        metavar="PROXIES_JSON",
        help="JSON list of proxies to create at start, as Toxiproxy's -config",
    )
    parser.add_argument(
        "--seed", type=int, default=None, help="seed for toxicity, jitter and slicer randomness"
    )


def serve(args: argparse.Namespace, stop: threading.Event | None = None) -> int:
    """Run until SIGINT/SIGTERM (or ``stop`` is set). Bad input raises UsageError."""
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port {args.port} is not a TCP port (0-65535)")
    if not args.host.strip():
        # An empty host binds every interface: that must be asked for by name (0.0.0.0).
        raise UsageError("--host is empty: give an address (0.0.0.0 for every interface)")
    server = EmbeddedServer(host=args.host, port=args.port, seed=args.seed)
    stop = stop or threading.Event()
    try:
        if args.config:
            # Before the API listens, as Toxiproxy does: clients never see a partial set.
            try:
                proxies = server.load_config(args.config)
            except ApiError as exc:
                raise UsageError(f"--config {args.config}: {exc.message}") from None
            print(f"populated {len(proxies)} proxies from {args.config}", flush=True)
        try:
            server.start()
        except OSError as exc:
            raise UsageError(
                f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}"
            ) from None
        print(f"rafael toxiproxy API listening on {server.url}", flush=True)

        def _on_signal(signum: int, frame: FrameType | None) -> None:
            stop.set()

        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, _on_signal)
            signal.signal(signal.SIGINT, _on_signal)
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
    return 0


class UsageError(RafaelError):
    """Bad command-line input; one line for the user."""


def _serve_command(args: argparse.Namespace) -> int:
    from pytest_rafael.cli import CommandError

    try:
        return serve(args)
    except UsageError as exc:
        raise CommandError(str(exc), exit_code=2) from None


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], group: argparse.ArgumentParser
) -> None:
    """Add ``serve`` to the ``rafael toxiproxy`` command group."""
    parser = sub.add_parser(
        "serve",
        help="run the embedded Toxiproxy-compatible server",
        description="Run a Toxiproxy 2.x compatible server.",
    )
    add_serve_arguments(parser)
    parser.set_defaults(func=_serve_command)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pytest_rafael.toxiproxy",
        description="Run a Toxiproxy 2.x compatible server.",
    )
    add_serve_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return serve(args)
    except UsageError as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2
