"""What a stressor may take: the run's limits and the checks of a
stressor's attributes against them, before any child process starts."""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil

from pytest_rafael.errors import RafaelError

if TYPE_CHECKING:
    from pytest_rafael.scenario.attributes import Attribute


KINDS = ("cpu", "memory", "disk")

_MB = 1024 * 1024

_DISK_FREE_SHARE = 0.5


class StressError(RafaelError):
    """A stressor was refused or could not be started. ``str()`` is one line."""


@dataclass(frozen=True)
class StressLimits:
    """The blast radius of stressors.

    ``memory_share``: a memory stressor may take at most this share of
    ``psutil.virtual_memory().available`` at its start (``--rafael-memory-cap``).
    ``max_disk_mb``: the largest file a disk stressor writes (it rewrites that region).
    ``start_timeout_s``: how long the load may take to be in place.
    ``stop_grace_s``: how long a stop waits for a graceful exit before SIGKILL.
    """

    memory_share: float = 0.5
    max_disk_mb: float = 512.0
    max_block_kb: int = 65536  # at most the scenario schema's bound (STRESS_ATTRIBUTES)
    start_timeout_s: float = 30.0
    stop_grace_s: float = 2.0

    def __post_init__(self) -> None:
        if isinstance(self.memory_share, bool) or not 0.0 <= self.memory_share <= 1.0:
            raise StressError(
                f"stress limits: memory_share must be in 0..1, got {self.memory_share!r}"
            )
        for name in ("max_disk_mb", "max_block_kb", "start_timeout_s", "stop_grace_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise StressError(f"stress limits: {name} must be a positive number, got {value!r}")


_TYPES: dict[str, tuple[type, ...]] = {"int": (int,), "number": (int, float), "bool": (bool,)}


def _top(attr: Attribute, limits: StressLimits) -> float:
    """The attribute's upper bound on this machine, under these limits."""
    if attr.cap == "cpu_count":
        return float(min(attr.maximum, os.cpu_count() or 1))
    if attr.cap:
        return min(attr.maximum, float(getattr(limits, attr.cap)))
    return float(attr.maximum)


def _check_value(kind: str, name: str, attr: Attribute, value: Any, limits: StressLimits) -> None:
    types = _TYPES[attr.kind]
    # bool is an int subclass: `cores: true` must not mean one core.
    wrong_bool = isinstance(value, bool) and bool not in types
    if wrong_bool or not isinstance(value, types):
        wanted = " or ".join(t.__name__ for t in types)
        raise StressError(f"{kind} stressor: attribute {name!r} must be {wanted}, got {value!r}")
    if attr.kind == "bool":
        return
    top = _top(attr, limits)
    if not isinstance(value, (int, float)) or not attr.minimum <= value <= top:
        raise StressError(
            f"{kind} stressor: attribute {name!r} must be between {attr.minimum:g} and "
            f"{top:g}, got {value!r}"
        )


def normalize_attributes(
    kind: str, attributes: Mapping[str, Any], limits: StressLimits | None = None
) -> dict[str, Any]:
    """Validate ``attributes`` of a ``kind`` stressor and fill in defaults.

    Usable at scenario-load time (no process is started). Raises :class:`StressError` with one
    line naming the kind and the attribute. The memory cap is not checked here: it depends on
    the memory available when the stressor starts.
    """
    # The one attribute schema, shared with the scenario loader and the strategies.
    from pytest_rafael.scenario.attributes import STRESS_ATTRIBUTES

    limits = limits or StressLimits()
    if kind not in STRESS_ATTRIBUTES:
        raise StressError(f"unknown stressor kind {kind!r}; valid kinds: {', '.join(KINDS)}")
    schema = STRESS_ATTRIBUTES[kind]
    if not isinstance(attributes, Mapping):
        raise StressError(
            f"{kind} stressor: attributes must be a mapping, got {type(attributes).__name__}"
        )
    unknown = sorted(str(k) for k in attributes if k not in schema)
    if unknown:
        raise StressError(
            f"{kind} stressor: unknown attribute {unknown[0]!r}; valid: {', '.join(schema)}"
        )
    out: dict[str, Any] = {}
    for name, attr in schema.items():
        if name not in attributes:
            if attr.required:
                raise StressError(f"{kind} stressor: attribute {name!r} is required")
            out[name] = attr.default
            continue
        _check_value(kind, name, attr, attributes[name], limits)
        out[name] = attributes[name]
    if kind == "disk" and out["block_kb"] * 1024 > out["mb"] * _MB:
        raise StressError(
            f"disk stressor: attribute 'block_kb' ({out['block_kb']}) exceeds the file size "
            f"({out['mb']:g} MB)"
        )
    return out


def _check_memory_cap(mb: float, limits: StressLimits) -> None:
    available_mb = psutil.virtual_memory().available / _MB
    allowed_mb = available_mb * limits.memory_share
    if mb > allowed_mb:
        raise StressError(
            f"memory stressor: requested {mb:g} MB exceeds the allowed {allowed_mb:.0f} MB "
            f"({limits.memory_share:.0%} of {available_mb:.0f} MB available)"
        )


def _check_disk_space(base: Path, mb: float) -> None:
    # Never let a stressor fill a disk: keep its file within half of the free space.
    free_mb = shutil.disk_usage(base).free / _MB
    allowed_mb = free_mb * _DISK_FREE_SHARE
    if mb > allowed_mb:
        raise StressError(
            f"disk stressor: requested {mb:g} MB exceeds the allowed {allowed_mb:.0f} MB "
            f"({_DISK_FREE_SHARE:.0%} of {free_mb:.0f} MB free in {str(base)!r})"
        )
