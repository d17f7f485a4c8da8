"""In-process faults observed by real code (file writes, name lookups, the wall clock, a
patched function) and reverted to the very same objects afterwards."""

from __future__ import annotations

import builtins
import datetime
import errno
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime as imported_datetime  # bound before the skew: reached too
from pathlib import Path

import pytest

from pytest_rafael.faults import inprocess


@pytest.fixture
def client_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """A real module with a function, and a second module that imported it by name."""
    (tmp_path / "rafael_dep.py").write_text(
        "def fetch(x):\n    return x * 2\n\nasync def afetch(x):\n    return x * 3\n"
    )
    (tmp_path / "rafael_caller.py").write_text(
        "from rafael_dep import fetch\n\ndef use():\n    return fetch(21)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    import rafael_caller  # type: ignore[import-not-found]

    yield rafael_caller
    for name in ("rafael_dep", "rafael_caller"):
        sys.modules.pop(name, None)


def test_raise_reaches_code_that_imported_the_function_and_is_reverted(
    client_module: object,
) -> None:
    import rafael_dep  # type: ignore[import-not-found]

    original = rafael_dep.fetch
    fault = inprocess.apply(
        "raise", "rafael_dep:fetch", {"error": "ConnectionError", "message": "down"}
    )
    seen: list[BaseException] = []

    def in_a_thread() -> None:
        try:
            client_module.use()  # type: ignore[attr-defined]
        except ConnectionError as exc:
            seen.append(exc)

    try:
        thread = threading.Thread(target=in_a_thread)
        thread.start()
        thread.join()
        with pytest.raises(ConnectionError, match="down"):
            client_module.use()  # type: ignore[attr-defined]
    finally:
        observed = fault.revert()
    assert len(seen) == 1
    assert observed == {"calls": 2, "raised": 2}
    assert rafael_dep.fetch is original
    assert client_module.fetch is original  # type: ignore[attr-defined]
    assert client_module.use() == 42  # type: ignore[attr-defined]


def test_delay_wraps_a_coroutine_function(client_module: object) -> None:
    import asyncio

    import rafael_dep

    fault = inprocess.apply("delay", "rafael_dep:afetch", {"seconds": 0.05})
    try:
        started = time.monotonic()
        assert asyncio.run(rafael_dep.afetch(2)) == 6
        waited = time.monotonic() - started
    finally:
        observed = fault.revert()
    assert waited >= 0.05  # a lower bound: the delay happened
    assert observed == {"calls": 1, "delayed": 1}


def test_an_inherited_method_is_patched_on_the_subclass_and_removed_after(
    client_module: object,
) -> None:
    import rafael_dep

    exec(
        "class Base:\n    def get(self):\n        return 1\nclass Client(Base):\n    pass\n",
        vars(rafael_dep),
    )
    fault = inprocess.apply("raise", "rafael_dep:Client.get", {"error": "TimeoutError"})
    try:
        with pytest.raises(TimeoutError):
            rafael_dep.Client().get()
        assert rafael_dep.Base().get() == 1  # the base class is left alone
    finally:
        fault.revert()
    assert "get" not in vars(rafael_dep.Client)
    assert rafael_dep.Client().get() == 1


def test_unknown_function_and_error_are_one_line_errors(client_module: object) -> None:
    with pytest.raises(inprocess.InProcessError, match="has no function 'nope'"):
        inprocess.resolve_function("rafael_dep:nope")
    with pytest.raises(inprocess.InProcessError, match="cannot import 'no_such_mod'"):
        inprocess.resolve_function("no_such_mod:f")
    with pytest.raises(inprocess.InProcessError, match="not an exception class"):
        inprocess.resolve_error("NotAnError")


def test_disk_full_fails_real_writes_under_the_path_only(tmp_path: Path) -> None:
    full, other = tmp_path / "full", tmp_path / "other"
    full.mkdir()
    other.mkdir()
    real_open, real_write = builtins.open, os.write
    fault = inprocess.apply("disk_full", "*", {"path": str(full), "bytes": 10})
    try:
        with pytest.raises(OSError) as info, open(full / "data.txt", "w") as handle:
            handle.write("0123456789 and more")
        assert info.value.errno == errno.ENOSPC
        fd = os.open(full / "raw.bin", os.O_WRONLY | os.O_CREAT)
        with pytest.raises(OSError):
            os.write(fd, b"x")
        os.close(fd)
        (other / "fine.txt").write_text("x" * 100)  # outside the path: unaffected
    finally:
        observed = fault.revert()
    assert (full / "data.txt").read_text() == "0123456789"  # what fitted was written
    assert observed["written_bytes"] == 10
    assert observed["failed_writes"] >= 2
    assert builtins.open is real_open
    assert os.write is real_write
    (full / "after.txt").write_text("x" * 100)


def test_dns_failure_fails_real_getaddrinfo_for_named_hosts() -> None:
    real = socket.getaddrinfo
    fault = inprocess.apply(
        "dns_failure", "*", {"hosts": ["db.rafael.test", "*.svc"], "error": "nxdomain"}
    )
    try:
        with pytest.raises(socket.gaierror) as info:
            socket.getaddrinfo("db.rafael.test", 5432)
        assert info.value.errno == socket.EAI_NONAME
        with pytest.raises(socket.gaierror):
            socket.create_connection(("cache.svc", 6379), timeout=1)
        assert socket.getaddrinfo("127.0.0.1", 80)  # numbers need no DNS
    finally:
        observed = fault.revert()
    assert observed["failed"] == 2
    assert observed["failed_hosts"] == ["cache.svc", "db.rafael.test"]
    assert socket.getaddrinfo is real


def test_clock_skew_moves_the_wall_clock_but_not_monotonic() -> None:
    real_time, real_monotonic, real_datetime = time.time, time.monotonic, datetime.datetime
    before = real_time()
    fault = inprocess.apply("clock_skew", "*", {"offset": -86400.0})
    try:
        assert time.time() - before < -86000
        assert datetime.datetime.now().timestamp() - before < -86000
        assert imported_datetime.now().timestamp() - before < -86000
        assert isinstance(real_datetime(2020, 1, 1), datetime.datetime)
        assert time.monotonic is real_monotonic
    finally:
        observed = fault.revert()
    assert observed == {"offset_s": -86400.0}
    assert time.time is real_time
    assert datetime.datetime is real_datetime
    assert imported_datetime is real_datetime
    assert abs(time.time() - before) < 86000
