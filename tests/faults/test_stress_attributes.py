"""Stressor attributes are validated before anything starts; errors are one line."""

from __future__ import annotations

import os
from typing import Any

import psutil
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_rafael.faults.stress import start_stressor
from pytest_rafael.faults.stress_limits import StressError, StressLimits, normalize_attributes
from pytest_rafael.faults.stress_process import _encode_spec, _parse_line

LIMITS = StressLimits(max_disk_mb=64)
CORES = os.cpu_count() or 1


@pytest.mark.parametrize(
    ("kind", "attrs", "names"),
    [
        ("cpu", {"percnt": 50}, ["cpu", "'percnt'"]),
        ("cpu", {"percent": 0}, ["cpu", "'percent'", "between 1 and 100"]),
        ("cpu", {"percent": 101}, ["cpu", "'percent'"]),
        ("cpu", {"percent": "80"}, ["cpu", "'percent'", "int or float"]),
        ("cpu", {"cores": True}, ["cpu", "'cores'", "int"]),
        ("cpu", {"cores": 1.5}, ["cpu", "'cores'"]),
        ("cpu", {"cores": CORES + 1}, ["cpu", "'cores'", f"between 1 and {CORES}"]),
        ("cpu", {"cores": 0}, ["cpu", "'cores'"]),
        ("memory", {}, ["memory", "'mb'", "required"]),
        ("memory", {"mb": -5}, ["memory", "'mb'", "between 1 and"]),
        ("memory", {"mb": 0.5}, ["memory", "'mb'", "between 1 and"]),
        ("memory", {"mb": None}, ["memory", "'mb'"]),
        ("memory", {"mb": 10, "pages": 3}, ["memory", "'pages'"]),
        ("disk", {"mb": 65}, ["disk", "'mb'", "between 0.0625 and 64"]),
        ("disk", {"mb": 4, "fsync": "yes"}, ["disk", "'fsync'", "bool"]),
        ("disk", {"mb": 1, "block_kb": 2048}, ["disk", "'block_kb'"]),
        ("disk", {"mb": 4, "block_kb": 0}, ["disk", "'block_kb'"]),
        ("gpu", {}, ["'gpu'", "cpu, memory, disk"]),
    ],
)
def test_bad_attributes_give_one_line_naming_kind_and_attribute(
    kind: str, attrs: dict[str, Any], names: list[str]
) -> None:
    with pytest.raises(StressError) as info:
        start_stressor(kind, attrs, LIMITS)
    msg = str(info.value)
    assert "\n" not in msg
    for name in names:
        assert name in msg
    assert psutil.Process().children() == []


def test_defaults_are_filled_in() -> None:
    assert normalize_attributes("cpu", {}) == {"percent": 100, "cores": 1, "period_ms": 10}
    assert normalize_attributes("disk", {"mb": 8}) == {"mb": 8, "block_kb": 64, "fsync": True}
    assert normalize_attributes("memory", {"mb": 1.5}) == {"mb": 1.5}


@pytest.mark.parametrize(
    "kwargs",
    [{"memory_share": 1.5}, {"memory_share": -0.1}, {"max_disk_mb": 0}, {"stop_grace_s": -1}],
)
def test_bad_limits_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(StressError, match="stress limits"):
        StressLimits(**kwargs)


_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-10, 10_000),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=5),
)


# generation is cheap, but the shared machine can stall it: no timing health checks
@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    kind=st.sampled_from(["cpu", "memory", "disk"]),
    attrs=st.dictionaries(
        st.sampled_from(["percent", "cores", "period_ms", "mb", "block_kb", "fsync", "x"]),
        _values,
        max_size=4,
    ),
)
def test_any_attributes_either_validate_or_fail_with_one_line(
    kind: str, attrs: dict[str, Any]
) -> None:
    try:
        out = normalize_attributes(kind, attrs, LIMITS)
    except StressError as exc:
        msg = str(exc)
        assert "\n" not in msg
        assert msg.startswith(f"{kind} stressor:")
        return
    # accepted: every value is within its documented range
    if kind == "cpu":
        assert 1 <= out["percent"] <= 100
        assert 1 <= out["cores"] <= CORES
        assert 1 <= out["period_ms"] <= 1000
    elif kind == "memory":
        assert out["mb"] > 0
    else:
        assert 0 < out["mb"] <= 64
        assert isinstance(out["fsync"], bool)
        assert out["block_kb"] * 1024 <= out["mb"] * 1024 * 1024


@given(
    st.dictionaries(
        st.text("abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=12),
        st.integers(-(2**62), 2**62),
        max_size=5,
    )
)
def test_the_child_protocol_round_trips(fields: dict[str, int]) -> None:
    words = _encode_spec(fields)
    assert _parse_line(" ".join(["final", *words])) == ("final", fields)


@pytest.mark.parametrize("line", ["", "   ", "ready pid", "ready pid=x", "Traceback (most"])
def test_garbage_from_the_child_is_not_a_protocol_line(line: str) -> None:
    assert _parse_line(line) is None
