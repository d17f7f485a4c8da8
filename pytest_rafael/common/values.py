"""Parsers of option values (text to value) for the option table in
:mod:`pytest_rafael.settings`: each raises ``ValueError`` saying what was
expected; the table adds where the value came from."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any


def _bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"expected true or false, got {text!r}")


def _number(
    kind: type[float] | type[int], accept: Callable[[float], bool], expected: str
) -> Callable[[str], Any]:
    """A parser for one kind of number, failing with "expected <expected>, got '...'"."""

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not accept(value):
            raise ValueError(f"expected {expected}, got {text!r}")
        return value

    return parse


# Each iteration is a pytest item made at collection: a typo's extra zeros must be an
# error, not a collection that eats the machine's memory.
MAX_ITERATIONS = 10_000

_positive_int = _number(int, lambda v: v >= 1, "a positive integer")
_iterations = _number(
    int, lambda v: 1 <= v <= MAX_ITERATIONS, f"a positive integer up to {MAX_ITERATIONS}"
)

# The store keeps the seed in an SQLite INTEGER (signed 64 bits).
_seed = _number(int, lambda v: 0 <= v < 2**63, "an integer seed from 0 to 2**63-1")

_unit_float = _number(float, lambda v: 0.0 <= v <= 1.0, "a number between 0 and 1")

_positive_float = _number(
    float, lambda v: 0 < v < 1e6, "a positive number of seconds below 1000000"
)


def _url(text: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(text if "://" in text else f"http://{text}")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"expected a Toxiproxy URL such as http://127.0.0.1:8474, got {text!r}")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"bad port in {text!r}") from None
    return f"{parts.scheme}://{parts.hostname}:{port or 8474}"


def _path(text: str) -> Path:
    if not text.strip():
        raise ValueError("expected a path, got an empty string")
    # What every file system refuses, refused here with the value rather than as an
    # OSError from deep inside the run (NAME_MAX is 255 bytes on Linux and macOS).
    if "\0" in text:
        raise ValueError(f"expected a path, got one with a NUL byte: {text!r}")
    path = Path(text)
    long = [part for part in path.parts if len(os.fsencode(part)) > 255]
    if long:
        raise ValueError(f"a file or folder name is longer than 255 bytes: {long[0][:40]}...")
    return path


def _store(text: str) -> Path | str:
    """A ``postgresql://`` URL (kept as text: a Path would fold its ``//``) or a file."""
    from pytest_rafael.common.store_url import is_store_url

    stripped = text.strip()
    if is_store_url(stripped):
        from urllib.parse import urlsplit

        try:
            urlsplit(stripped).port  # noqa: B018 - raises for a port that is not a number
        except ValueError:
            raise ValueError(f"bad port in {text!r}") from None
        return stripped
    if "://" in stripped:
        raise ValueError(f"expected a file or a postgresql:// URL, got {text!r}")
    return _path(text)


def _group(text: str) -> str:
    stripped = text.strip()
    # isprintable() refuses the surrogates a non-UTF-8 environment variable decodes to:
    # the store could not write them, and the run would be lost at its end.
    if (
        not stripped
        or len(stripped) > 200
        or not all(c.isprintable() and not c.isspace() for c in stripped)
    ):
        raise ValueError(
            f"expected a run group id without spaces (printable text, at most 200 "
            f"characters), got {text!r}"
        )
    return stripped


def _port_range(text: str) -> tuple[int, int]:
    first, sep, last = text.strip().partition("-")
    try:
        low, high = int(first), int(last if sep else first)
    except ValueError:
        raise ValueError(f"expected a port range like 20000-20099, got {text!r}") from None
    if not 1 <= low <= high <= 65535:
        raise ValueError(f"expected ports 1..65535, low to high, like 20000-20099, got {text!r}")
    return low, high


def _host(text: str) -> str:
    host = text.strip().strip("[]")
    if not host or any(c.isspace() or c in "/:@" for c in host.replace("::", "")):
        raise ValueError(f"expected a host name or address, got {text!r}")
    return host


def _paths(items: Sequence[str]) -> tuple[Path, ...]:
    return tuple(_path(i) for i in items)


def _words(items: Sequence[str]) -> tuple[str, ...]:
    return tuple(w for i in items for w in i.replace(",", " ").split())


def _weights(text: str) -> tuple[float, float, float, float]:
    """success_rate, recovery_speed, resource_efficiency[, speed] (speed defaults to 0.2)."""
    try:
        parts = tuple(float(p) for p in text.split(","))
    except ValueError:
        raise ValueError(f"expected numbers like 0.6,0.2,0.2,0.2, got {text!r}") from None
    if (
        len(parts) not in (3, 4)
        or not all(0 <= p <= 1000 for p in parts)  # NaN fails too
        or sum(parts) <= 0
    ):
        raise ValueError(
            "expected three or four numbers from 0 to 1000 (not all 0) like 0.6,0.2,0.2,0.2,"
            f" got {text!r}"
        )
    if len(parts) == 3:
        parts = (*parts, 0.2)
    return (parts[0], parts[1], parts[2], parts[3])
