"""Real Redis and PostgreSQL servers on loopback TCP, for chaos tests.

``chaos_proxy`` needs a TCP upstream, but the easy ways to get a PostgreSQL (the
``pgserver`` wheel, a distribution's cluster) listen on a Unix socket, and a Redis started
by hand outlives the test run. These helpers start a private server on a free loopback
port in a temporary folder and remove it afterwards. A server whose binaries are absent
raises :class:`ServerUnavailable` with the reason and how to install them, which the
fixtures turn into a skip.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from pytest_rafael.errors import RafaelError

START_TIMEOUT_S = 60.0  # generous: CI machines are loaded, initdb does real work


class ServerUnavailable(RafaelError, RuntimeError):
    """The server cannot be started here; the message says why and what to install."""


@dataclass(frozen=True)
class Server:
    """A running server: ``address`` ("host:port") is what ``chaos_proxy`` takes."""

    kind: str
    host: str
    port: int
    user: str = ""
    database: str = ""

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        if self.kind == "redis":
            return f"redis://{self.host}:{self.port}/0"
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.database}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------- Redis


def redis_ready(host: str, port: int) -> bool:
    """Does a Redis server answer PING at host:port?"""
    try:
        with socket.create_connection((host, port), timeout=1.0) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@contextlib.contextmanager
def redis_server() -> Iterator[Server]:
    """A private ``redis-server`` on a free loopback port, without persistence."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise ServerUnavailable(
            "redis-server is not installed (Debian/Ubuntu: apt-get install redis-server; "
            "or run examples/install-redis.sh)"
        )
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="rafael-redis-") as workdir:
        args = [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            workdir,
        ]
        with _running(args, "redis-server", lambda: redis_ready("127.0.0.1", port)):
            yield Server("redis", "127.0.0.1", port)


# --------------------------------------------------------------------------- PostgreSQL


def postgres_ready(
    host: str, port: int, user: str = "postgres", database: str = "postgres"
) -> bool:
    """Does a PostgreSQL server at host:port open a session for ``user`` on ``database``
    (trust authentication)?

    Speaks the start of the wire protocol, so no driver is needed: the server answers
    with messages ending in ReadyForQuery ('Z') once the session is open, or an error
    ('E') while it starts up or when the database does not exist.
    """
    params = f"user\0{user}\0database\0{database}\0\0".encode()
    body = struct.pack("!i", 196608) + params  # protocol 3.0
    try:
        with socket.create_connection((host, port), timeout=2.0) as s:
            s.sendall(struct.pack("!i", len(body) + 4) + body)
            for _ in range(64):  # a handful of ParameterStatus messages come first
                head = _recv_exact(s, 5)
                kind, length = head[:1], struct.unpack("!i", head[1:])[0]
                _recv_exact(s, length - 4)
                if kind in (b"Z", b"E"):
                    if kind == b"Z":
                        s.sendall(b"X\0\0\0\4")  # Terminate: a clean goodbye
                    return kind == b"Z"
    except (OSError, struct.error):
        return False
    return False


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def postgres_bindir() -> Path | None:
    """Where ``initdb`` and ``postgres`` are: the ``pgserver`` wheel, then PATH, then the
    Debian/Ubuntu layout (/usr/lib/postgresql/VERSION/bin, newest first)."""
    with contextlib.suppress(ImportError):
        import pgserver  # type: ignore[import-not-found,unused-ignore]

        wheel = Path(pgserver.__file__).parent / "pginstall" / "bin"
        if (wheel / "initdb").is_file():
            return wheel
    on_path = shutil.which("initdb")
    if on_path is not None:
        return Path(on_path).resolve().parent
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: (
            int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0
        ),
    )
    return Path(found[-1]).parent if found else None


def _postgres_account() -> tuple[int, int] | None:
    """PostgreSQL refuses to run as root: as root, run it as the 'postgres' account."""
    if os.geteuid() != 0:
        return None
    import pwd

    try:
        entry = pwd.getpwnam("postgres")
    except KeyError:
        raise ServerUnavailable(
            "PostgreSQL refuses to run as root and there is no 'postgres' user to run it as "
            "(the Debian package postgresql creates one)"
        ) from None
    return entry.pw_uid, entry.pw_gid


@contextlib.contextmanager
def postgres_server(database: str = "postgres") -> Iterator[Server]:
    """A private PostgreSQL cluster on a free loopback TCP port (trust authentication,
    user ``postgres``, fsync off), removed afterwards."""
    bindir = postgres_bindir()
    if bindir is None:
        raise ServerUnavailable(
            "PostgreSQL is not installed (pip install pgserver, or apt-get install postgresql)"
        )
    account = _postgres_account()
    port = free_port()
    datadir = Path(tempfile.mkdtemp(prefix="rafael-pg-"))
    try:
        if account is not None:
            os.chown(datadir, *account)
        uid, gid = account if account is not None else (None, None)
        _tool(
            bindir,
            uid,
            gid,
            "initdb",
            "-D",
            str(datadir / "data"),
            "-U",
            "postgres",
            "--auth=trust",
            "--no-sync",
            "--no-locale",
            "-E",
            "UTF8",
        )
        args = [str(bindir / "postgres"), "-D", str(datadir / "data"), "-p", str(port)]
        for setting in (
            "listen_addresses=127.0.0.1",
            f"unix_socket_directories={datadir}",
            "fsync=off",
            "full_page_writes=off",
        ):
            args += ["-c", setting]
        ready = lambda: postgres_ready("127.0.0.1", port)  # noqa: E731
        # SIGINT is PostgreSQL's "fast shutdown": sessions end, the server exits at once.
        with _running(args, "postgres", ready, stop_signal=signal.SIGINT, user=uid, group=gid):
            server = Server("postgresql", "127.0.0.1", port, "postgres", "postgres")
            if database != "postgres":
                _tool(
                    bindir,
                    uid,
                    gid,
                    "createdb",
                    "-h",
                    server.host,
                    "-p",
                    str(port),
                    "-U",
                    "postgres",
                    database,
                )
                server = Server("postgresql", "127.0.0.1", port, "postgres", database)
            yield server
    finally:
        shutil.rmtree(datadir, ignore_errors=True)


def _tool(bindir: Path, uid: int | None, gid: int | None, name: str, *args: str) -> None:
    """Run a PostgreSQL tool (initdb, createdb) as the server's account."""
    done = subprocess.run(
        [str(bindir / name), *args],
        capture_output=True,
        text=True,
        check=False,
        user=uid,
        group=gid,
    )
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        raise ServerUnavailable(f"{name} failed: {last}")


# --------------------------------------------------------------------------- process


def _die_with_parent(sig: int) -> Callable[[], None] | None:
    """A preexec function asking Linux to send ``sig`` when pytest dies, so that a killed
    run leaves no server behind (it runs after the switch of user, which would clear it)."""
    if not os.path.exists("/proc/self"):
        return None
    import ctypes

    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl  # loaded before the fork
    except (OSError, AttributeError):
        return None

    def preexec() -> None:
        prctl(1, int(sig), 0, 0, 0)  # PR_SET_PDEATHSIG

    return preexec


@contextlib.contextmanager
def _running(
    args: list[str],
    name: str,
    ready: Callable[[], bool],
    *,
    stop_signal: int = signal.SIGTERM,
    user: int | None = None,
    group: int | None = None,
) -> Iterator[None]:
    """Run a server process until the block ends; wait until ``ready()`` says it serves.
    Its output goes to a log file (a pipe nobody reads would block a chatty server)."""
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(
            args,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent(stop_signal),
            user=user,
            group=group,
        )
        try:
            deadline = time.monotonic() + START_TIMEOUT_S
            while not ready():
                if proc.poll() is not None:
                    log.seek(0)
                    lines = log.read().decode(errors="replace").strip().splitlines()
                    last = (lines or [f"exit status {proc.returncode}"])[-1]
                    raise ServerUnavailable(f"{name} did not start: {last}")
                if time.monotonic() > deadline:
                    raise ServerUnavailable(f"{name} did not answer within {START_TIMEOUT_S:g} s")
                time.sleep(0.05)
            yield
        finally:
            if proc.poll() is None:
                proc.send_signal(stop_signal)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
