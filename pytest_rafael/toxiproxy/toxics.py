"""Toxic definitions: types, attributes, JSON shape and validation of API input.

A :class:`ToxicSpec` is immutable; an update produces a new object, which is how a link
notices that its running stage must be rebuilt (identity comparison, no locks on the
data path).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from pytest_rafael.toxiproxy import errors

UPSTREAM = 0
DOWNSTREAM = 1
STREAMS = {"upstream": UPSTREAM, "downstream": DOWNSTREAM}

# Attribute names per toxic type, in the order Toxiproxy serialises them. All are
# integers (Go int/int64 fields); times are milliseconds except slicer's delay (µs).
TOXIC_TYPES: dict[str, tuple[str, ...]] = {
    "noop": (),
    "latency": ("latency", "jitter"),
    "bandwidth": ("rate",),
    "slow_close": ("delay",),
    "timeout": ("timeout",),
    "reset_peer": ("timeout",),
    "slicer": ("average_size", "size_variation", "delay"),
    "limit_data": ("bytes",),
}

_INT64_MAX = 2**63 - 1
# Toxiproxy takes any int64, but Python's clocks and sleeps overflow long before that:
# 10**12 (31 years in ms, 11 days in µs, a terabyte) is beyond any real fault.
_ATTR_MAX = 10**12


@dataclass(frozen=True)
class ToxicSpec:
    """One toxic as configured on a proxy."""

    name: str
    type: str
    stream: str
    toxicity: float
    attributes: Mapping[str, int] = field(default_factory=dict)

    @property
    def direction(self) -> int:
        return STREAMS[self.stream.lower()]

    def attr(self, key: str) -> int:
        return int(self.attributes.get(key, 0))

    def to_json(self) -> dict[str, Any]:
        toxicity: float | int = self.toxicity
        if math.isfinite(self.toxicity) and float(self.toxicity).is_integer():
            toxicity = int(self.toxicity)  # Go prints float32 1.0 as `1`
        return {
            "attributes": dict(self.attributes),
            "name": self.name,
            "type": self.type,
            "stream": self.stream,
            "toxicity": toxicity,
        }


def _field_error(field_name: str, value: object, expected: str) -> errors.ApiError:
    kind = type(value).__name__ if value is not None else "null"
    return errors.BAD_REQUEST_BODY.joined(
        f"cannot use {kind} value for field {field_name!r} (expected {expected})"
    )


def _as_int(field_name: str, value: object) -> int:
    # JSON numbers only; bool is an int subclass in Python but not a number in JSON.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _field_error(field_name, value, "integer")
    if isinstance(value, float):
        if not value.is_integer():
            raise _field_error(field_name, value, "integer")
        value = int(value)
    if abs(value) > _INT64_MAX:
        raise _field_error(field_name, value, "64-bit integer")
    if abs(value) > _ATTR_MAX:
        raise _field_error(field_name, value, f"an integer up to {_ATTR_MAX}")
    return value


def _as_float(field_name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _field_error(field_name, value, "number")
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):  # 1e999 decodes to inf; JSON has no such number
        raise _field_error(field_name, value, "finite number")
    return number


def _merge_attributes(toxic_type: str, base: Mapping[str, int], raw: object) -> dict[str, int]:
    attributes = {key: int(base.get(key, 0)) for key in TOXIC_TYPES[toxic_type]}
    if raw is None:
        return attributes
    if not isinstance(raw, dict):
        raise _field_error("attributes", raw, "object")
    for key in TOXIC_TYPES[toxic_type]:
        # Unknown keys are ignored and null leaves the value alone, like Go's decoder.
        if key in raw and raw[key] is not None:
            attributes[key] = _as_int(key, raw[key])
    return attributes


def parse_toxic(body: object) -> ToxicSpec:
    """Validate a POST /proxies/{proxy}/toxics body, in Toxiproxy's order of checks."""
    if not isinstance(body, dict):
        raise _field_error("toxic", body, "object")
    name = body.get("name") or ""
    toxic_type = body.get("type") or ""
    stream = body.get("stream", "downstream")
    for key, value in (("name", name), ("type", toxic_type), ("stream", stream)):
        if not isinstance(value, str):
            raise _field_error(key, value, "string")
    toxicity = 1.0
    if body.get("toxicity") is not None:
        toxicity = _as_float("toxicity", body["toxicity"])
    if stream.lower() not in STREAMS:
        raise errors.INVALID_STREAM
    if not name:
        name = f"{toxic_type}_{stream}"
    if toxic_type not in TOXIC_TYPES:
        raise errors.INVALID_TOXIC_TYPE
    attributes = _merge_attributes(toxic_type, {}, body.get("attributes"))
    return ToxicSpec(name, toxic_type, stream, toxicity, attributes)


def update_toxic(current: ToxicSpec, body: object) -> ToxicSpec:
    """Apply a POST/PATCH /proxies/{proxy}/toxics/{toxic} body: attributes and toxicity."""
    if not isinstance(body, dict):
        raise _field_error("toxic", body, "object")
    toxicity = current.toxicity
    if body.get("toxicity") is not None:
        toxicity = _as_float("toxicity", body["toxicity"])
    attributes = _merge_attributes(current.type, current.attributes, body.get("attributes"))
    return replace(current, toxicity=toxicity, attributes=attributes)
