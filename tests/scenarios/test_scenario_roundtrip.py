"""Properties: any valid scenario dumps and loads back equal; no input crashes the loader."""

from __future__ import annotations

import difflib
import math
import re
import string
from dataclasses import replace
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_rafael.scenario.attributes import STRESS_ATTRIBUTES, TOXIC_ATTRIBUTES
from pytest_rafael.scenario.dump import dump_scenario, same_scenario
from pytest_rafael.scenario.durations import MAX_SECONDS
from pytest_rafael.scenario.loader import loads
from pytest_rafael.scenario.model import (
    SEVERITIES,
    STREAMS,
    STRESS_TYPES,
    TOXIC_TYPES,
    FaultSpec,
    Scenario,
    ScenarioError,
)

# Alphabets rather than from_regex: the same sets, drawn several times faster.
LOWER = string.ascii_lowercase
names = st.text(alphabet=LOWER + string.digits + "_", min_size=1, max_size=30)
targets = st.just("*") | st.text(
    alphabet=string.ascii_letters + string.digits + "_.:-", min_size=1, max_size=20
)
descriptions = st.text(min_size=1, max_size=80).filter(lambda s: s.strip() != "")
starts = st.floats(min_value=0.0, max_value=MAX_SECONDS)
durations = st.none() | st.floats(min_value=0.0, max_value=MAX_SECONDS, exclude_min=True)


def attribute_values(schema: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """Attribute dicts within the schema: each required key, any subset of the others."""
    entries: dict[str, st.SearchStrategy[Any]] = {}
    for key, spec in schema.items():
        if spec.kind == "bool":
            value: st.SearchStrategy[Any] = st.booleans()
        elif spec.kind == "int":
            value = st.integers(int(spec.minimum), int(spec.maximum))
        else:
            value = st.integers(math.ceil(spec.minimum), int(spec.maximum)) | st.floats(
                spec.minimum, spec.maximum
            )
        entries[key] = value if spec.required else st.none() | value
    return st.fixed_dictionaries(entries).map(
        lambda d: {k: v for k, v in d.items() if v is not None}
    )


@st.composite
def toxic_faults(draw: st.DrawFn) -> FaultSpec:
    type_ = draw(st.sampled_from(TOXIC_TYPES))
    attributes = draw(attribute_values(TOXIC_ATTRIBUTES[type_]))
    if type_ == "slicer" and attributes.get("size_variation", 0) >= attributes["average_size"]:
        attributes["size_variation"] = attributes["average_size"] - 1
    return FaultSpec(
        kind="toxic",
        target=draw(targets),
        type=type_,
        stream=draw(st.sampled_from(STREAMS)),
        toxicity=draw(st.floats(0.0, 1.0)),
        attributes=attributes,
        start_s=draw(starts),
        duration_s=draw(durations),
    )


@st.composite
def stress_faults(draw: st.DrawFn) -> FaultSpec:
    type_ = draw(st.sampled_from(STRESS_TYPES))
    attributes = draw(attribute_values(STRESS_ATTRIBUTES[type_]))
    if type_ == "disk" and attributes.get("block_kb", 64) * 1024 > attributes["mb"] * 2**20:
        attributes["block_kb"] = max(1, int(attributes["mb"] * 1024))
    return FaultSpec(
        kind="stress",
        type=type_,
        attributes=attributes,
        start_s=draw(starts),
        duration_s=draw(durations),
    )


plain = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)
custom_faults = st.builds(
    FaultSpec,
    kind=st.builds(
        str.__add__, st.sampled_from(LOWER), st.text(alphabet=LOWER + "0123456789_.-", max_size=15)
    ).filter(
        lambda k: (
            k not in ("toxic", "down", "stress")
            and not difflib.get_close_matches(k, ("toxic", "down", "stress"), cutoff=0.75)
        )
    ),
    target=targets,
    type=st.none() | st.text(min_size=1, max_size=10),
    attributes=st.dictionaries(st.text(max_size=8), plain, max_size=3),
    start_s=starts,
    duration_s=durations,
)

down_faults = st.builds(
    FaultSpec, kind=st.just("down"), target=targets, start_s=starts, duration_s=durations
)

scenarios = st.builds(
    Scenario,
    name=names,
    description=descriptions,
    severity=st.sampled_from(SEVERITIES),
    faults=st.lists(
        toxic_faults() | stress_faults() | down_faults | custom_faults, min_size=1, max_size=5
    ).map(tuple),
)


# deadline=None: the machine is shared, and a slow example is not a wrong one.
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios)
def test_any_valid_scenario_dumps_and_loads_back_equal(scenario: Scenario) -> None:
    text = dump_scenario(scenario)
    again = loads(text, "dumped.yaml")
    assert same_scenario(again, scenario)
    # Equal as dataclasses too, once `source` (where it was read from) is set alike.
    assert replace(
        again, source="x", faults=tuple(replace(f, source="x") for f in again.faults)
    ) == replace(
        scenario, source="x", faults=tuple(replace(f, source="x") for f in scenario.faults)
    )
    assert dump_scenario(again) == text  # stable: a second dump is identical


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
FIELD_PATHS = [
    ("name",),
    ("description",),
    ("severity",),
    ("faults",),
    ("faults", 0),
    ("faults", 0, "kind"),
    ("faults", 0, "type"),
    ("faults", 0, "target"),
    ("faults", 0, "attributes"),
    ("faults", 0, "attributes", "latency"),
    ("faults", 0, "toxicity"),
    ("faults", 0, "start"),
    ("faults", 0, "duration"),
    ("faults", 0, "junk"),
    ("extra",),
]


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(FIELD_PATHS), json_values)
def test_a_mangled_field_gives_a_one_line_error_or_a_valid_scenario(
    path: tuple[str | int, ...], junk: Any
) -> None:
    data: dict[str, Any] = {
        "name": "base",
        "description": "base scenario",
        "severity": "low",
        "faults": [{"kind": "toxic", "type": "latency", "attributes": {"latency": 5}}],
    }
    holder: Any = data
    for key in path[:-1]:
        holder = holder[key]
    holder[path[-1]] = junk
    text = yaml.safe_dump(data)
    try:
        scenario = loads(text, "mangled.yaml")
    except ScenarioError as exc:
        message = str(exc)
        assert re.match(r"mangled\.yaml:\d+: ", message), message
        assert "\n" not in message
    else:
        assert same_scenario(loads(dump_scenario(scenario)), scenario)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_text_never_crashes_the_loader(text: str) -> None:
    try:
        loads(text, "random.yaml")
    except ScenarioError as exc:
        message = str(exc)
        assert message.startswith("random.yaml:")
        assert "\n" not in message
