"""Proxies left on a Toxiproxy server by runs that died (SIGKILL, a pytest-timeout
``thread`` timeout, a crashed CI runner) and the sweep that removes them.

A proxy the plugin creates carries its owner in its server name:
``<name>-rafael-<host>-pid<pid>-t<start>-<worker>-<n>-<hash>``: the host, the pid and the
start time of the creating process (the start time tells a reused pid from the owner).
At the start of a chaos run, proxies of this host whose owner is gone are deleted
(deleting a proxy removes its toxics and closes its connections). A proxy of another
host, a live process, or a name this plugin does not make is never touched.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache

_SAFE = re.compile(r"[^A-Za-z0-9.]")
_OWNED = re.compile(
    r"-rafael-(?P<host>[A-Za-z0-9._]+)-pid(?P<pid>\d+)-t(?P<start>\d+)"
    r"-(?P<worker>[A-Za-z0-9_]+)-(?P<n>\d+)-(?P<hash>[0-9a-z]+)$"
)


@dataclass(frozen=True)
class Owner:
    """The process that created a proxy, as its name records it."""

    host: str
    pid: int
    start: int


@dataclass(frozen=True)
class SweepResult:
    """What one sweep removed, and what it could not remove (one line each)."""

    swept: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()


def _safe(text: str) -> str:
    # "-" separates the fields, so it may not appear inside one.
    return _SAFE.sub("_", text) or "_"


@cache
def this_host() -> str:
    return _safe(socket.gethostname())


@cache
def _own_start() -> int:
    return _start_of(os.getpid()) or 0


def _start_of(pid: int) -> int | None:
    """The process's start time in whole seconds, or None when there is no such process."""
    import psutil

    try:
        return int(psutil.Process(pid).create_time())
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError, OverflowError):
        return None


def server_name(name: str, worker: str, n: int, tag: str) -> str:
    """The name on the server of proxy ``name``: unique per process, test and proxy, and
    carrying the owner for :func:`sweep`."""
    return (
        f"{name}-rafael-{this_host()}-pid{os.getpid()}-t{_own_start()}-"
        f"{_safe(worker)}-{n}-{_safe(tag).lower()}"
    )


def owner_of(server_proxy_name: str) -> Owner | None:
    """The owner a proxy name records; None for a name this plugin did not make."""
    m = _OWNED.search(server_proxy_name)
    if m is None:
        return None
    return Owner(m.group("host"), int(m.group("pid")), int(m.group("start")))


def is_dead(owner: Owner) -> bool:
    """Whether the owner, a process of this host, is gone (a reused pid counts as gone)."""
    if owner.host != this_host():
        return False
    start = _start_of(owner.pid)
    # Start times are rounded differently on some platforms: a second either way.
    return start is None or abs(start - owner.start) > 1


def orphans(names: Iterable[str]) -> list[str]:
    """The proxies among ``names`` whose owner is a dead process of this host."""
    found = []
    for name in names:
        owner = owner_of(name)
        if owner is not None and is_dead(owner):
            found.append(name)
    return sorted(found)


def sweep(names: Iterable[str], delete: Callable[[str], None]) -> SweepResult:
    """Delete the orphans among ``names`` with ``delete``; one failure does not stop
    the others."""
    swept, errors = [], []
    for name in orphans(names):
        try:
            delete(name)
        except Exception as exc:  # reported, and tried again by the next run
            errors.append(f"{name}: {exc}")
        else:
            swept.append(name)
    return SweepResult(tuple(swept), tuple(errors))


def sweep_server(url: str, timeout: float) -> SweepResult:
    """Sweep the Toxiproxy server at ``url``; a server that cannot be listed is one error."""
    from pytest_rafael.faults.network import ToxiproxyControl, ToxiproxyError

    control = ToxiproxyControl(url, timeout=timeout)
    try:
        return sweep(control.proxy_names(), control.delete_by_name)
    except ToxiproxyError as exc:
        return SweepResult(errors=(str(exc),))
