"""Validation of the ``flood`` and in-process fault kinds in scenario files.

The scenario loader hands each such fault here. Attributes may be written on the fault
itself (``rate: 5000``) or under ``attributes:``; both end up in ``FaultSpec.attributes``
under their canonical names (a few obvious aliases are accepted, such as ``exception`` for
``error``). Every bad value is reported at its own line, like every other scenario field.

What needs the code under test (does ``target`` name a real function, can ``error`` be
raised) is checked at collection, by :func:`pytest_rafael.faults.inprocess.check`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pytest_rafael.scenario.model import is_address

__all__ = ["FAULT_KEYS", "NEW_KINDS", "parse"]

_TIMING = ("start", "duration", "every")
_RATE_MAX = 50_000.0  # the same caps as pytest_rafael.faults.flood
_CONCURRENCY_MAX = 1024
_PAYLOAD_MAX = 65_536
_OFFSET_MAX_S = 10 * 366 * 86400.0
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*([.:][A-Za-z_][A-Za-z0-9_]*)*")
_TARGET = re.compile(r"\*|[A-Za-z0-9_.:-]+")
_HOST = re.compile(r"(\*\.)?[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*\.?|\*")
_SIGNED = re.compile(r"\s*([+-]?)\s*([0-9.eE+-]+)\s*(ms|s|m|h|d)?\s*")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


class _Bad(ValueError):
    """A value's problem; the loader adds file, line and field."""


@dataclass(frozen=True)
class _Field:
    check: Callable[[Any], Any]  # the canonical value, or raises _Bad
    required: bool = False


def _number(
    low: float, high: float, unit: str, *, integer: bool = False, above: bool = False
) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        ok = isinstance(value, int) or (not integer and isinstance(value, float))
        if (
            isinstance(value, bool)
            or not ok
            or not math.isfinite(value)
            or not (low < value if above else low <= value)
            or value > high
        ):
            noun = "an integer" if integer else "a number"
            bound = f"above {low:g}" if above else f"from {low:g}"
            raise _Bad(f"expected {noun} {bound} to {high:g} ({unit}), got {value!r}")
        return value

    return check


def _seconds(high: float, *, positive: bool = False) -> Callable[[Any], float]:
    def check(value: Any) -> float:
        seconds = _signed_seconds(value)
        if not (seconds > 0 if positive else seconds >= 0) or seconds > high:
            bound = "above 0" if positive else "from 0"
            raise _Bad(f"expected seconds {bound} to {high:g} (or '250ms', '2s'), got {value!r}")
        return seconds

    return check


def _signed_seconds(value: Any) -> float:
    problem = f"expected seconds like 30, -1.5, '250ms', '-2h' or '1d', got {value!r}"
    if isinstance(value, bool):
        raise _Bad(problem)
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str) and (match := _SIGNED.fullmatch(value)):
        try:
            seconds = float(match.group(2)) * _UNITS[match.group(3)]
        except ValueError:
            raise _Bad(problem) from None
        seconds = -seconds if match.group(1) == "-" else seconds
    else:
        raise _Bad(problem)
    if not math.isfinite(seconds):
        raise _Bad(problem)
    return seconds


def _offset(value: Any) -> float:
    seconds = _signed_seconds(value)
    if seconds == 0 or abs(seconds) > _OFFSET_MAX_S:
        raise _Bad(f"expected a non-zero offset of at most 10 years, got {value!r}")
    return seconds


def _text(pattern: re.Pattern[str] | None, what: str, limit: int = 1000) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if not isinstance(value, str) or not value or len(value.encode()) > limit:
            raise _Bad(f"expected {what}, got {value!r}")
        if pattern is not None and not pattern.fullmatch(value):
            raise _Bad(f"expected {what}, got {value!r}")
        return value

    return check


def _choice(*choices: str) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if value not in choices:
            raise _Bad(f"expected one of {', '.join(choices)}, got {value!r}")
        return str(value)

    return check


def _hosts(value: Any) -> list[str]:
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not names:
        raise _Bad(f"expected a host name or a list of them ('*' for all), got {value!r}")
    for name in names:
        if not isinstance(name, str) or not _HOST.fullmatch(name):
            raise _Bad(
                f"expected host names like 'api.example.com' or '*.example.com', got {name!r}"
            )
    return list(names)


def _path(value: Any) -> str:
    if not isinstance(value, str) or not value.strip() or "\0" in value:
        raise _Bad(f"expected a path prefix ('*' for every file), got {value!r}")
    return value


_FUNCTION = _text(_TARGET, "'package.module:function' (or a name the marker's targets= maps)")
_FIELDS: dict[str, dict[str, _Field]] = {
    "flood": {
        "rate": _Field(_number(0, _RATE_MAX, "requests per second", above=True), required=True),
        "concurrency": _Field(_number(1, _CONCURRENCY_MAX, "connections", integer=True)),
        "payload": _Field(_text(None, f"text of at most {_PAYLOAD_MAX} bytes", _PAYLOAD_MAX)),
        "connection": _Field(_choice("keep-alive", "new")),
        "timeout": _Field(_seconds(60.0, positive=True)),
    },
    "raise": {
        "error": _Field(
            _text(_NAME, "an exception class like 'ConnectionError' or 'package.module:Error'"),
            required=True,
        ),
        "message": _Field(_text(None, "text")),
    },
    "delay": {"seconds": _Field(_seconds(3600.0), required=True)},
    "disk_full": {
        "path": _Field(_path, required=True),
        "bytes": _Field(_number(0, 2**62, "bytes written before the disk is full", integer=True)),
    },
    "dns_failure": {
        "hosts": _Field(_hosts, required=True),
        "error": _Field(_choice("temporary", "nxdomain")),
    },
    "clock_skew": {"offset": _Field(_offset, required=True)},
}
_ALIASES: dict[str, dict[str, str]] = {
    "raise": {"exception": "error"},
    "delay": {"delay": "seconds"},
    "disk_full": {
        "target": "path",
        "after_bytes": "bytes",
        "limit": "bytes",
        "after": "bytes",
        "max_bytes": "bytes",
        "limit_bytes": "bytes",
    },
    "dns_failure": {"target": "hosts", "host": "hosts", "names": "hosts", "domains": "hosts"},
    "clock_skew": {"seconds": "offset", "offset_s": "offset", "skew": "offset"},
}
_DEFAULTS: dict[str, dict[str, Any]] = {
    "flood": {"concurrency": 16, "connection": "keep-alive", "timeout": 2.0},
    "disk_full": {"bytes": 0},
    "dns_failure": {"error": "temporary"},
}
NEW_KINDS = tuple(_FIELDS)
_OWN_KEYS = {"flood": ("target",), "raise": ("target", "toxicity"), "delay": ("target", "toxicity")}
FAULT_KEYS: dict[str, tuple[str, ...]] = {
    kind: (
        "kind",
        *_OWN_KEYS.get(kind, ()),
        *fields,
        *_ALIASES.get(kind, {}),
        "attributes",
        *_TIMING,
    )
    for kind, fields in _FIELDS.items()
}


def parse(
    doc: Any,
    kind: str,
    fault: Any,
    pairs: Mapping[str, tuple[Any, Any]],
    field: str,
) -> tuple[str, dict[str, Any]]:
    """(target, attributes) of one fault of a new kind. ``doc`` is the loader's document
    (``fail``, ``scalar``, ``mapping``, ``loader``, ``problems``)."""
    fields, aliases = _FIELDS[kind], _ALIASES.get(kind, {})
    given: dict[str, tuple[Any, str]] = {}  # canonical name -> (value node, field shown)
    for key in (*fields, *aliases):
        if key in pairs:
            name = aliases.get(key, key)
            if name in given:
                doc.problems.append(
                    doc.fail(pairs[key][1], f"{field}.{key}", f"'{name}' is given twice")
                )
            given[name] = (pairs[key][1], f"{field}.{key}")
    if "attributes" in pairs:
        allowed = (*fields, *(a for a in aliases if a != "target"))
        nested = doc.mapping(
            pairs["attributes"][1],
            f"{field}.attributes",
            allowed,
            f"attributes of a '{kind}' fault",
        )
        for key, (_, node) in nested.items():
            name = aliases.get(key, key)
            if name in given:
                doc.problems.append(
                    doc.fail(node, f"{field}.attributes.{key}", f"'{name}' is given twice")
                )
            given[name] = (node, f"{field}.attributes.{key}")
    attributes = dict(_DEFAULTS.get(kind, {}))
    for name, (node, shown) in given.items():
        try:
            attributes[name] = fields[name].check(_value(doc, node, shown))
        except _Bad as exc:
            doc.problems.append(doc.fail(node, shown, str(exc)))
    for name, spec in fields.items():
        if spec.required and name not in given:
            doc.problems.append(doc.fail(fault, field, f"a '{kind}' fault needs '{name}'"))
    return _target(doc, kind, fault, pairs, field), attributes


def _value(doc: Any, node: Any, shown: str) -> Any:
    if getattr(node, "id", "") == "sequence":  # only host lists are lists
        return [doc.scalar(item, shown) for item in node.value]
    return doc.scalar(node, shown)


def _target(
    doc: Any, kind: str, fault: Any, pairs: Mapping[str, tuple[Any, Any]], field: str
) -> str:
    node = pairs["target"][1] if "target" in pairs else None
    if kind not in ("flood", "raise", "delay"):
        return "*"  # disk_full and dns_failure read `target` as an alias above
    if node is None:
        if kind == "flood":
            return "*"
        raise doc.fail(fault, field, f"a '{kind}' fault needs a target ('package.module:function')")
    value = doc.scalar(node, f"{field}.target")
    if kind == "flood":
        return _flood_target(doc, node, value, f"{field}.target")
    try:
        return _FUNCTION(value)
    except _Bad as exc:
        raise doc.fail(node, f"{field}.target", str(exc)) from None


def _flood_target(doc: Any, node: Any, value: Any, shown: str) -> str:
    if not isinstance(value, str) or not value:
        raise doc.fail(
            node, shown, f"expected a chaos_proxy name, '*' or a loopback URL, got {value!r}"
        )
    if is_address(value):
        from pytest_rafael.faults.flood import FloodError, parse_address

        try:
            parse_address(value)
        except FloodError as exc:
            raise doc.fail(node, shown, str(exc)) from None
        return value
    if not _TARGET.fullmatch(value):
        raise doc.fail(
            node, shown, f"expected a chaos_proxy name, '*' or a loopback URL, got {value!r}"
        )
    return value
