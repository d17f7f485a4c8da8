"""In-process faults: failures that never cross a socket a proxy could sit on.

``raise`` and ``delay`` wrap a function named ``package.module:function`` (or
``package.module:Class.method``); ``disk_full`` makes writes under a path fail with
``ENOSPC`` once a byte budget is spent; ``dns_failure`` makes ``getaddrinfo`` fail for
named hosts; ``clock_skew`` moves ``time.time()`` and ``datetime.now()`` by an offset and
leaves ``time.monotonic`` alone.

Each fault replaces module attributes for the whole test process (so threads see it
too) and :meth:`revert` puts the very same objects back. A replaced object is swapped
wherever a module holds it (``from socket import getaddrinfo`` included), found by
identity in ``sys.modules``. What stays out of reach: other processes, C code that calls
the C library directly (sqlite writes, libpq's name lookups), and references kept outside
module globals (a function stored in a dict, a closure or a default argument).
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import functools
import importlib
import inspect
import random
import socket
import sys
import threading
import time
import types
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pytest_rafael.errors import RafaelError
from pytest_rafael.scenario.model import INPROCESS_KINDS, FaultSpec

__all__ = [
    "INPROCESS_KINDS",
    "InProcessError",
    "apply",
    "check",
    "resolve_error",
    "resolve_function",
]

DEFAULT_MESSAGE = "injected by pytest-rafael"


class InProcessError(RafaelError, ValueError):
    """An in-process fault cannot be applied (unknown function, bad exception). One line."""


# --------------------------------------------------------------------------- rebinding


_INHERITED = object()


@dataclass(frozen=True)
class _Binding:
    namespace: Any  # a module or a class
    name: str
    old: Any  # the value found in the namespace's own __dict__ (a staticmethod stays one)


class Rebinding:
    """Replaces an object in its home namespace and in every module global that holds it;
    :meth:`restore` puts the originals back, newest first."""

    def __init__(self) -> None:
        self._done: list[_Binding] = []
        self._strays: list[tuple[Any, Any]] = []  # (replacement, original)
        self._lock = threading.Lock()

    def swap(self, namespace: Any, name: str, new: Any, *, everywhere: Any = None) -> None:
        """Set ``namespace.name = new``; with ``everywhere``, also each module global that
        is that very object."""
        with self._lock:
            self._set(namespace, name, new)
            if everywhere is None:
                return
            self._strays.append((new, everywhere))
            for module, key in _holders(everywhere, skip=namespace):
                self._set(module, key, new)

    def _set(self, namespace: Any, name: str, new: Any) -> None:
        # An inherited method is set on the subclass and deleted again on restore.
        self._done.append(_Binding(namespace, name, vars(namespace).get(name, _INHERITED)))
        setattr(namespace, name, new)

    def restore(self) -> None:
        with self._lock:
            while self._done:
                binding = self._done.pop()
                if binding.old is _INHERITED:
                    delattr(binding.namespace, binding.name)
                else:
                    setattr(binding.namespace, binding.name, binding.old)
            # A module imported during the fault (`from json import dumps`) took the
            # replacement: it gets the original back too.
            while self._strays:
                new, original = self._strays.pop()
                for module, key in _holders(new):
                    setattr(module, key, original)


def _holders(value: Any, skip: Any = None) -> list[tuple[types.ModuleType, str]]:
    """(module, global name) of every loaded module global that is ``value``; the
    plugin's own modules keep the real objects, so its records stay true."""
    found = []
    for module in list(sys.modules.values()):
        if (
            isinstance(module, types.ModuleType)
            and module is not skip
            and not module.__name__.startswith("pytest_rafael.")
        ):
            found += [(module, key) for key, held in list(vars(module).items()) if held is value]
    return found


# --------------------------------------------------------------------------- resolution


def resolve_function(target: str) -> tuple[Any, str, Any]:
    """(owner, attribute name, function) for ``package.module:function`` or
    ``package.module:Class.method``. Imports the module; raises :class:`InProcessError`."""
    module_name, sep, attr_path = target.partition(":")
    if not sep or not module_name or not attr_path:
        raise InProcessError(f"target {target!r} is not 'package.module:function'")
    try:
        owner: Any = importlib.import_module(module_name)
    except Exception as exc:  # ImportError, or the module's own error at import
        raise InProcessError(
            f"target {target!r}: cannot import {module_name!r}: {type(exc).__name__}: {exc}"
        ) from None
    *path, name = attr_path.split(".")
    for part in path:
        if not hasattr(owner, part):
            raise InProcessError(f"target {target!r}: {owner.__name__!r} has no attribute {part!r}")
        owner = getattr(owner, part)
    raw = vars(owner).get(name) if hasattr(owner, "__dict__") else None
    if raw is None and isinstance(owner, type):  # a method a base class defines
        raw = inspect.getattr_static(owner, name, None)
    if raw is None:
        where = getattr(owner, "__name__", repr(owner))
        raise InProcessError(f"target {target!r}: {where!r} has no function {name!r}")
    function = raw.__func__ if isinstance(raw, (staticmethod, classmethod)) else raw
    if not callable(function):
        raise InProcessError(f"target {target!r}: {name!r} is not a function")
    return owner, name, raw


def resolve_error(name: str, message: str | None = None) -> BaseException:
    """An instance of the exception class ``name``: a builtin (``ConnectionError``) or
    ``package.module:Class`` / ``package.module.Class``."""
    import builtins

    if ":" in name or "." in name:
        module_name, _, cls_name = name.rpartition(":") if ":" in name else name.rpartition(".")
        try:
            cls = getattr(importlib.import_module(module_name), cls_name, None)
        except Exception as exc:
            raise InProcessError(f"error {name!r}: cannot import {module_name!r}: {exc}") from None
    else:
        cls = getattr(builtins, name, None)
    if not (isinstance(cls, type) and issubclass(cls, BaseException)):
        raise InProcessError(f"error {name!r} is not an exception class")
    try:
        return cls(message or f"{DEFAULT_MESSAGE}: {name}")
    except Exception as exc:
        raise InProcessError(f"error {name!r} cannot be made from a message: {exc}") from None


def check(faults: Iterable[FaultSpec]) -> None:
    """What collection can check before anything runs: each ``raise``/``delay`` target is
    a function that exists, and each ``error`` can be raised. Raises
    :class:`InProcessError` naming the fault's file and line."""
    for fault in faults:
        if fault.kind not in ("raise", "delay"):
            continue
        try:
            if ":" not in fault.target:
                raise InProcessError(
                    f"target {fault.target!r} is not 'package.module:function'; name the "
                    f"function in the scenario or map it with the marker's "
                    f"targets={{{fault.target!r}: 'package.module:function'}}"
                )
            resolve_function(fault.target)
            if fault.kind == "raise":
                resolve_error(str(fault.attributes["error"]), fault.attributes.get("message"))
        except InProcessError as exc:
            raise InProcessError(f"{fault.source}: '{fault.kind}' fault: {exc}") from None


# --------------------------------------------------------------------------- faults


class _Counter:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls = 0
        self.hits = 0

    def count(self, hit: bool) -> None:
        with self.lock:
            self.calls += 1
            self.hits += hit


class _Wrapped:
    """``raise`` or ``delay`` around one function, sync or async."""

    def __init__(self, kind: str, target: str, attributes: Mapping[str, Any], toxicity: float):
        owner, name, raw = resolve_function(target)
        self.kind, self.toxicity = kind, toxicity
        self.error_name = str(attributes.get("error", ""))
        self.message = attributes.get("message")
        self.seconds = float(attributes.get("seconds", 0.0))
        if kind == "raise":
            resolve_error(self.error_name, self.message)  # fail now, not inside the test
        self.counter = _Counter()
        self.random = random.Random()
        function = raw.__func__ if isinstance(raw, (staticmethod, classmethod)) else raw
        wrapper: Any = self._wrap(function)
        if isinstance(raw, (staticmethod, classmethod)):
            wrapper = type(raw)(wrapper)
        self.rebinding = Rebinding()
        self.rebinding.swap(owner, name, wrapper, everywhere=raw)

    def _hit(self) -> bool:
        hit = self.toxicity >= 1.0 or self.random.random() < self.toxicity
        self.counter.count(hit)
        return hit

    def _wrap(self, function: Callable[..., Any]) -> Callable[..., Any]:
        if inspect.iscoroutinefunction(function):

            @functools.wraps(function)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                if self._hit():
                    if self.kind == "raise":
                        raise resolve_error(self.error_name, self.message)
                    await asyncio.sleep(self.seconds)
                return await function(*args, **kwargs)

            return async_wrapper

        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if self._hit():
                if self.kind == "raise":
                    raise resolve_error(self.error_name, self.message)
                time.sleep(self.seconds)
            return function(*args, **kwargs)

        return wrapper

    def revert(self) -> dict[str, Any]:
        self.rebinding.restore()
        verb = "raised" if self.kind == "raise" else "delayed"
        return {"calls": self.counter.calls, verb: self.counter.hits}


class _DnsFailure:
    def __init__(self, hosts: Iterable[str], error: str) -> None:
        self.hosts = tuple(h.lower().rstrip(".") for h in hosts)
        code = socket.EAI_NONAME if error == "nxdomain" else socket.EAI_AGAIN
        text = (
            "Name or service not known"
            if error == "nxdomain"
            else ("Temporary failure in name resolution")
        )
        self.error = (code, text)
        self.counter = _Counter()
        self.failed: list[str] = []
        self.rebinding = Rebinding()
        for name in ("getaddrinfo", "gethostbyname", "gethostbyname_ex"):
            original = getattr(socket, name)
            self.rebinding.swap(socket, name, self._wrap(original), everywhere=original)

    def matches(self, host: Any) -> bool:
        if isinstance(host, bytes):
            host = host.decode("idna", errors="replace")
        if not isinstance(host, str) or not host:
            return False
        name = host.lower().rstrip(".")
        if _numeric(name):
            return False  # an address needs no lookup: no DNS outage can touch it
        for pattern in self.hosts:
            if pattern == "*":
                if name != "localhost":
                    return True
            elif pattern.startswith("*."):
                if name.endswith(pattern[1:]):
                    return True
            elif name == pattern:
                return True
        return False

    def _wrap(self, original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        def lookup(host: Any, *args: Any, **kwargs: Any) -> Any:
            hit = self.matches(host)
            self.counter.count(hit)
            if hit:
                with self.counter.lock:
                    if len(self.failed) < 20:
                        self.failed.append(str(host))
                raise socket.gaierror(*self.error)
            return original(host, *args, **kwargs)

        return lookup

    def revert(self) -> dict[str, Any]:
        self.rebinding.restore()
        return {
            "lookups": self.counter.calls,
            "failed": self.counter.hits,
            "failed_hosts": sorted(set(self.failed)),
        }


def _numeric(name: str) -> bool:
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in name else socket.AF_INET, name.strip("[]"))
    except OSError:
        return False
    return True


class _ClockSkew:
    def __init__(self, offset_s: float) -> None:
        self.offset_s = offset_s
        self.rebinding = Rebinding()
        real_time, real_time_ns = time.time, time.time_ns

        def skewed_time() -> float:
            return real_time() + offset_s

        def skewed_time_ns() -> int:
            return real_time_ns() + int(offset_s * 1e9)

        functools.update_wrapper(skewed_time, real_time)
        functools.update_wrapper(skewed_time_ns, real_time_ns)
        self.rebinding.swap(time, "time", skewed_time, everywhere=real_time)
        self.rebinding.swap(time, "time_ns", skewed_time_ns, everywhere=real_time_ns)
        real_datetime, real_date = _dt.datetime, _dt.date
        skewed_datetime, skewed_date = _skewed_classes(offset_s, real_datetime, real_date)
        self.rebinding.swap(_dt, "datetime", skewed_datetime, everywhere=real_datetime)
        self.rebinding.swap(_dt, "date", skewed_date, everywhere=real_date)

    def revert(self) -> dict[str, Any]:
        self.rebinding.restore()
        return {"offset_s": self.offset_s}


def _skewed_classes(offset_s: float, real_datetime: Any, real_date: Any) -> tuple[type, type]:
    delta = _dt.timedelta(seconds=offset_s)

    class _Meta(type):
        # A datetime made before the skew (or by C code) is still a datetime to code that
        # now holds the skewed class under the name `datetime`.
        def __instancecheck__(cls, obj: object) -> bool:
            return isinstance(obj, cls.__mro__[1])

        def __subclasscheck__(cls, sub: type) -> bool:
            return issubclass(sub, cls.__mro__[1])

    class SkewedDatetime(real_datetime, metaclass=_Meta):  # type: ignore[misc]
        @classmethod
        def now(cls, tz: _dt.tzinfo | None = None) -> Any:
            return real_datetime.now(tz) + delta

        @classmethod
        def utcnow(cls) -> Any:
            return real_datetime.utcnow() + delta

        @classmethod
        def today(cls) -> Any:
            return real_datetime.today() + delta

    class SkewedDate(real_date, metaclass=_Meta):  # type: ignore[misc]
        @classmethod
        def today(cls) -> Any:
            return (real_datetime.now() + delta).date()

    for cls, real in ((SkewedDatetime, real_datetime), (SkewedDate, real_date)):
        cls.__name__, cls.__qualname__, cls.__module__ = (
            real.__name__,
            real.__qualname__,
            "datetime",
        )
    return SkewedDatetime, SkewedDate


# --------------------------------------------------------------------------- entry point


def apply(kind: str, target: str, attributes: Mapping[str, Any], toxicity: float = 1.0) -> Any:
    """Apply one in-process fault; the result has ``revert() -> observed``."""
    if kind in ("raise", "delay"):
        return _Wrapped(kind, target, attributes, toxicity)
    if kind == "dns_failure":
        return _DnsFailure(attributes.get("hosts", ("*",)), str(attributes.get("error", "")))
    if kind == "clock_skew":
        return _ClockSkew(float(attributes["offset"]))
    if kind == "disk_full":
        from pytest_rafael.faults import disk_quota  # it builds on Rebinding

        return disk_quota.DiskFull(
            str(attributes.get("path", "*")), int(attributes.get("bytes", 0))
        )
    raise InProcessError(f"unknown in-process fault kind {kind!r}")
