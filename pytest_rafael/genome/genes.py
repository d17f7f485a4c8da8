"""The gene catalog: every resilience strategy a genome can carry, with typed, bounded
parameters (:class:`ParamSpec`).

A :class:`Gene` is one configured strategy (``retry`` with ``max_attempts=3`` ...). It is
immutable and always valid: the only way to build one is :func:`make_gene`, which checks
every parameter against the catalog, so mutation operators and the runtime can trust it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from pytest_rafael.errors import RafaelError

# Exception names in `on:` lists: a builtin name (`ConnectionError`) or a dotted path
# (`requests.exceptions.ConnectionError`). Resolved only by the runtime, so that
# validating a genome file never imports user code.
_DOTTED = re.compile(
    r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*(:[A-Za-z_][A-Za-z0-9_.]*)?$"
)


class GenomeError(RafaelError, ValueError):
    """A genome or gene does not validate; the message is one line naming the field."""


@dataclass(frozen=True)
class ParamSpec:
    """One gene parameter: its type, bounds, default and whether evolution may change it.

    ``type`` is ``int``, ``float``, ``bool``, ``exceptions`` (a list of exception names),
    ``callable`` (a dotted path or null) or ``any`` (a YAML value, e.g. a fallback value).
    ``log_scale`` marks parameters whose sensible values span orders of magnitude
    (timeouts, delays): mutation then works on the logarithm.
    """

    name: str
    type: str
    default: Any
    low: float | None = None
    high: float | None = None
    mutable: bool = True
    log_scale: bool = False
    doc: str = ""

    def check(self, value: Any, where: str) -> Any:
        """Return ``value`` in canonical form or raise :class:`GenomeError` naming ``where``."""
        if self.type in ("int", "float"):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise GenomeError(f"{where}: expected a number, got {value!r}")
            if self.type == "int":
                if isinstance(value, float) and not value.is_integer():
                    raise GenomeError(f"{where}: expected an integer, got {value!r}")
                value = int(value)
            else:
                value = float(value)
                if not math.isfinite(value):
                    raise GenomeError(f"{where}: expected a finite number, got {value!r}")
            assert self.low is not None
            assert self.high is not None
            if not self.low <= value <= self.high:
                raise GenomeError(
                    f"{where}: must be between {_fmt(self.low)} and {_fmt(self.high)},"
                    f" got {value!r}"
                )
            return value
        if self.type == "bool":
            if not isinstance(value, bool):
                raise GenomeError(f"{where}: expected true or false, got {value!r}")
            return value
        if self.type == "exceptions":
            items = [value] if isinstance(value, str) else value
            if not isinstance(items, (list, tuple)) or not items:
                raise GenomeError(f"{where}: expected a list of exception names, got {value!r}")
            for item in items:
                if not isinstance(item, str) or not _DOTTED.match(item):
                    raise GenomeError(f"{where}: not an exception name: {item!r}")
            return tuple(items)
        if self.type == "callable":
            if value is None:
                return None
            if not isinstance(value, str) or not _DOTTED.match(value):
                raise GenomeError(
                    f"{where}: expected a dotted path like 'pkg.mod:func', got {value!r}"
                )
            return value
        # "any": a plain YAML value; freeze containers so the gene stays immutable.
        return _freeze(value, where)


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(x)


def _freeze(value: Any, where: str) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v, where) for v in value)
    if isinstance(value, Mapping):
        return MappingProxyType({str(k): _freeze(v, where) for k, v in value.items()})
    raise GenomeError(f"{where}: unsupported value {value!r}")


def thaw(value: Any) -> Any:
    """The plain (JSON/YAML-able) form of a canonical parameter value."""
    if isinstance(value, tuple):
        return [thaw(v) for v in value]
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    return value


P = ParamSpec
CATALOG: Mapping[str, tuple[ParamSpec, ...]] = MappingProxyType(
    {
        "retry": (
            P("max_attempts", "int", 3, 1, 20, doc="attempts in total, the first included"),
            P(
                "base_delay",
                "float",
                0.05,
                0.0,
                10.0,
                log_scale=True,
                doc="seconds before the second attempt",
            ),
            P("max_delay", "float", 1.0, 0.0, 60.0, log_scale=True, doc="cap on one backoff delay"),
            P("multiplier", "float", 2.0, 1.0, 10.0, doc="backoff growth per attempt"),
            P("jitter", "float", 0.1, 0.0, 1.0, doc="random +/- share of each delay"),
            P(
                "on",
                "exceptions",
                # Only errors that prove nothing was sent, unless the module is declared
                # idempotent: a retry must never do a non-idempotent write twice.
                ("NotDelivered",),
                mutable=False,
                doc="exception types that are retried (default: NotDelivered)",
            ),
        ),
        "circuit_breaker": (
            P("failure_threshold", "int", 5, 1, 1000, doc="consecutive failures that open it"),
            P(
                "failure_rate",
                "float",
                0.0,
                0.0,
                1.0,
                doc="if > 0: open when this share of the last `window` calls failed",
            ),
            P("window", "int", 20, 1, 1000, doc="calls in the failure-rate window"),
            P(
                "reset_timeout",
                "float",
                30.0,
                0.001,
                3600.0,
                log_scale=True,
                doc="seconds open before a trial call",
            ),
            P(
                "half_open_max_calls",
                "int",
                1,
                1,
                100,
                doc="trial calls let through (and successes needed) when half-open",
            ),
        ),
        "timeout": (
            P("seconds", "float", 2.0, 0.001, 3600.0, log_scale=True, doc="budget of one attempt"),
        ),
        "rate_limit": (
            P("rate", "float", 100.0, 0.01, 1_000_000.0, log_scale=True, doc="tokens per second"),
            P("burst", "int", 10, 1, 1_000_000, doc="bucket size"),
            P("max_wait", "float", 0.0, 0.0, 60.0, doc="seconds a caller may wait for a token"),
        ),
        "bulkhead": (
            P("max_concurrent", "int", 10, 1, 10_000, doc="calls running at once"),
            P("max_queue", "int", 0, 0, 100_000, doc="callers allowed to wait for a slot"),
        ),
        "fallback": (
            P("value", "any", None, mutable=False, doc="returned when the call fails"),
            P(
                "callable",
                "callable",
                None,
                mutable=False,
                doc="'pkg.mod:func' called with the call's arguments instead of `value`",
            ),
            P(
                "on",
                "exceptions",
                ("Exception",),
                mutable=False,
                doc="exception types that trigger the fallback",
            ),
        ),
        "cache": (
            P(
                "ttl",
                "float",
                60.0,
                0.001,
                86_400.0,
                log_scale=True,
                doc="seconds a result is kept",
            ),
            P("max_size", "int", 128, 1, 1_000_000, log_scale=True, doc="entries kept (LRU)"),
        ),
    }
)
del P

# The order genes are applied in at runtime, innermost first (see docs/genome.md).
ORDER: tuple[str, ...] = (
    "bulkhead",
    "rate_limit",
    "circuit_breaker",
    "timeout",
    "retry",
    "fallback",
    "cache",
)

# Genes evolution may add on its own: they change how hard a call tries, never what it
# returns. fallback and cache change results, rate_limit and bulkhead change throughput:
# they come only from the vault's gene pool or from a human.
AUTO_ADDABLE: tuple[str, ...] = ("retry", "timeout", "circuit_breaker")


@dataclass(frozen=True)
class Gene:
    """One configured strategy. Build with :func:`make_gene`; ``params`` is read-only and
    holds every parameter of the kind (defaults filled in)."""

    kind: str
    params: Mapping[str, Any]

    def __getitem__(self, name: str) -> Any:
        return self.params[name]

    def to_dict(self) -> dict[str, Any]:
        return {k: thaw(v) for k, v in self.params.items()}

    def __hash__(self) -> int:
        return hash((self.kind, repr(self.to_dict())))


def spec_of(kind: str, name: str) -> ParamSpec:
    for spec in CATALOG[kind]:
        if spec.name == name:
            return spec
    raise KeyError(name)


def make_gene(kind: str, params: Mapping[str, Any] | None, where: str = "") -> Gene:
    """A validated :class:`Gene`; missing parameters take the catalog default.

    ``where`` prefixes error messages (``payments.genes``) so that they name the field.
    """
    at = f"{where}.{kind}" if where else kind
    if kind not in CATALOG:
        raise GenomeError(f"{at}: unknown gene (known: {', '.join(CATALOG)})")
    if params is None:
        params = {}
    if not isinstance(params, Mapping):
        raise GenomeError(f"{at}: expected a mapping of parameters, got {params!r}")
    # YAML 1.1 reads an unquoted `on:` key as the boolean true; accept it as "on".
    params = {("on" if k is True else k): v for k, v in params.items()}  # type: ignore[comparison-overlap]
    specs = CATALOG[kind]
    names = {s.name for s in specs}
    for key in params:
        if key not in names:
            raise GenomeError(
                f"{at}.{key}: unknown parameter (known: {', '.join(s.name for s in specs)})"
            )
    values = {s.name: s.check(params.get(s.name, s.default), f"{at}.{s.name}") for s in specs}
    if kind == "fallback" and values["callable"] is not None and values["value"] is not None:
        raise GenomeError(f"{at}: give either value or callable, not both")
    return Gene(kind, MappingProxyType(values))


def default_gene(kind: str) -> Gene:
    return make_gene(kind, {})
