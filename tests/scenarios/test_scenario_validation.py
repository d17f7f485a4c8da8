"""Every validation error is one line naming the file, the line and the field."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest
import yaml

from pytest_rafael.scenario import loader as scenario_loader
from pytest_rafael.scenario.durations import parse_duration
from pytest_rafael.scenario.loader import ScenarioPathError, load_file, loads
from pytest_rafael.scenario.model import ScenarioError

HEAD = "name: s1\ndescription: a scenario\nseverity: low\nfaults:\n"
LATENCY = "  - kind: toxic\n    type: latency\n    attributes: {latency: 10}\n"


def fault(body: str) -> str:
    """A scenario whose second fault (faults[1], starting on line 8) is ``body``."""
    first, *rest = textwrap.dedent(body).strip().splitlines()
    return HEAD + LATENCY + f"  - {first}\n" + "".join(f"    {line}\n" for line in rest)


@pytest.fixture(autouse=True, params=["libyaml", "pure-python"])
def yaml_loader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every case runs with libyaml and with PyYAML's pure-Python loader (the fallback
    where libyaml is missing): same lines, same fields."""
    if request.param == "pure-python":
        monkeypatch.setattr(scenario_loader, "safe_loader", lambda: yaml.SafeLoader)
    elif not yaml.__with_libyaml__:
        pytest.skip("PyYAML without libyaml")


# (YAML text, line, field or None, fragment of the problem)
CASES = [
    ("name: a\x01b\n", 1, None, "invalid YAML: unacceptable character #x0001"),
    ("description: ok\nname: \x1f\n", 2, None, "invalid YAML: unacceptable character #x001f"),
    ("name: [\n", 2, None, "invalid YAML"),
    ("name: x\n  bad: indent\n", 2, None, "invalid YAML"),
    ("a: 1\n---\nb: 2\n", 2, None, "invalid YAML"),
    ("", 1, None, "empty file"),
    ("- just\n- a list\n", 1, None, "expected a mapping"),
    (HEAD.replace("severity: low\n", ""), 1, None, "missing key 'severity'"),
    (HEAD + LATENCY + "color: red\n", 8, "color", "unknown key"),
    (HEAD + LATENCY + "severity: high\n", 8, "severity", "duplicate key"),
    (HEAD.replace("s1", "Bad-Name") + LATENCY, 1, "name", "lower-case"),
    (HEAD.replace("s1", "7") + LATENCY, 1, "name", "expected text, got 7"),
    (HEAD.replace("a scenario", "' '") + LATENCY, 2, "description", "must not be empty"),
    (HEAD.replace("low", "urgent") + LATENCY, 3, "severity", "expected one of low, medium"),
    (HEAD, 4, "faults", "non-empty list"),
    (HEAD.replace("faults:\n", "faults: {}\n"), 4, "faults", "non-empty list"),
    (fault("type: latency"), 8, "faults[1]", "missing key 'kind'"),
    (fault("kind: toxix"), 8, "faults[1].kind", "did you mean 'toxic'?"),
    (
        fault("kind: 5"),
        8,
        "faults[1].kind",
        "expected one of toxic, down, stress, flood, raise, delay, disk_full, dns_failure, "
        "clock_skew or a plugin",
    ),
    (fault("kind: Big Bang"), 8, "faults[1].kind", "got 'Big Bang'"),
    (fault("kind: dns\nstream: upstream"), 9, "faults[1].stream", "not used by kind 'dns'"),
    (fault("kind: dns\nattributes: [1]"), 9, "faults[1].attributes", "expected a mapping"),
    (
        fault("kind: dns\nattributes: {when: 2024-01-01}"),
        9,
        "faults[1].attributes.when",
        "expected text, a number, true/false or null",
    ),
    (fault("kind: toxic\ntipe: latency"), 9, "faults[1].tipe", "did you mean 'type'?"),
    (fault("kind: toxic\nattributes: {latency: 1}"), 8, "faults[1]", "needs a type"),
    (fault("kind: toxic\ntype: lag"), 9, "faults[1].type", "expected one of latency"),
    (
        fault("kind: toxic\ntype: latency\nattributes: {latency: abc}"),
        10,
        "faults[1].attributes.latency",
        "expected a non-negative integer (ms), got 'abc'",
    ),
    (
        fault("kind: toxic\ntype: latency\nattributes:\n  jitter: 5"),
        10,
        "faults[1].attributes",
        "needs attribute 'latency'",
    ),
    (fault("kind: toxic\ntype: latency"), 8, "faults[1].attributes", "needs attribute 'latency'"),
    (
        fault("kind: toxic\ntype: latency\nattributes: {latency: -5}"),
        10,
        "faults[1].attributes.latency",
        "non-negative integer",
    ),
    (
        fault("kind: toxic\ntype: latency\nattributes: {latency: 1.5}"),
        10,
        "faults[1].attributes.latency",
        "got 1.5",
    ),
    (
        fault("kind: toxic\ntype: latency\nattributes: {latency: true}"),
        10,
        "faults[1].attributes.latency",
        "got True",
    ),
    (
        fault("kind: toxic\ntype: latency\nattributes: {latency: 1, rate: 5}"),
        10,
        "faults[1].attributes.rate",
        "unknown key",
    ),
    (
        fault("kind: toxic\ntype: bandwidth\nattributes: {rate: 0}"),
        10,
        "faults[1].attributes.rate",
        "from 1 to",
    ),
    (
        fault("kind: toxic\ntype: slicer\nattributes: {average_size: 8, size_variation: 8}"),
        10,
        "faults[1].attributes.size_variation",
        "less than average_size",
    ),
    (
        fault("kind: toxic\ntype: latency\nattributes: {latency: 1}\nstream: sideways"),
        11,
        "faults[1].stream",
        "expected one of upstream, downstream",
    ),
    (
        fault("kind: toxic\ntype: latency\nattributes: {latency: 1}\ntoxicity: 1.5"),
        11,
        "faults[1].toxicity",
        "probability from 0 to 1",
    ),
    (
        fault("kind: toxic\ntype: latency\nattributes: {latency: 1}\ntoxicity: high"),
        11,
        "faults[1].toxicity",
        "got 'high'",
    ),
    (
        fault("kind: toxic\ntype: latency\nattributes: {latency: 1}\ntarget: my db"),
        11,
        "faults[1].target",
        "proxy name",
    ),
    (
        fault("kind: toxic\ntype: latency\nattributes: {latency: 1}\nstart: soon"),
        11,
        "faults[1].start",
        "expected a duration",
    ),
    (
        fault("kind: toxic\ntype: latency\nattributes: {latency: 1}\nstart: -1s"),
        11,
        "faults[1].start",
        "expected a duration",
    ),
    (
        fault("kind: toxic\ntype: latency\nattributes: {latency: 1}\nduration: 0s"),
        11,
        "faults[1].duration",
        "above zero",
    ),
    (
        fault("kind: toxic\ntype: latency\nattributes: {latency: 1}\nduration: 2h"),
        11,
        "faults[1].duration",
        "expected a duration",
    ),
    (
        fault("kind: toxic\ntype: latency\nattributes: {latency: 1}\nduration: 7200"),
        11,
        "faults[1].duration",
        "at most 3600s",
    ),
    (fault("kind: down"), 8, "faults[1]", "needs a target"),
    (fault("kind: down\ntarget: db\ntype: latency"), 10, "faults[1].type", "not used by kind"),
    (fault("kind: stress\ntype: gpu"), 9, "faults[1].type", "expected one of cpu, memory, disk"),
    (fault("kind: stress\ntype: cpu\ntarget: db"), 10, "faults[1].target", "not used by kind"),
    (
        fault("kind: stress\ntype: memory\nattributes: {mb: 0}"),
        10,
        "faults[1].attributes.mb",
        "from 1 to",
    ),
    (
        fault("kind: stress\ntype: cpu\nattributes: {percent: 150}"),
        10,
        "faults[1].attributes.percent",
        "from 1 to 100",
    ),
    (
        fault("kind: stress\ntype: disk\nattributes: {mb: 1, fsync: maybe}"),
        10,
        "faults[1].attributes.fsync",
        "expected true or false",
    ),
    (
        fault("kind: stress\ntype: disk\nattributes: {mb: 1, block_kb: 2048}"),
        10,
        "faults[1].attributes.block_kb",
        "must fit in the file",
    ),
    (
        fault("kind: stress\ntype: cpu\nattributes: [percent, 50]"),
        10,
        "faults[1].attributes",
        "expected a mapping",
    ),
    (
        fault("kind: toxic\ntype: latency\nattributes: {latency: [1, 2]}"),
        10,
        "faults[1].attributes.latency",
        "got a list",
    ),
    (
        fault("kind: toxic\ntype: latency\nattributes: {latency: !!python/name:os.system }"),
        10,
        "faults[1].attributes.latency",
        "invalid YAML value",
    ),
]


@pytest.mark.parametrize(
    ("text", "line", "field", "problem"), CASES, ids=[str(i) for i in range(len(CASES))]
)
def test_error_names_file_line_and_field(
    tmp_path: Path, text: str, line: int, field: str | None, problem: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ScenarioError) as info:
        load_file(path)
    message = str(info.value)
    assert "\n" not in message
    prefix = f"{path}:{line}: " + (f"field '{field}': " if field else "")
    assert message.startswith(prefix), message
    assert problem in message, message


def test_the_fault_table_helper_puts_faults_1_on_line_8() -> None:
    # Guards the line numbers of the table above.
    text = fault("kind: toxic\ntype: latency\nattributes: {latency: 5}")
    assert text.splitlines()[7] == "  - kind: toxic"
    assert loads(text).faults[1].source == "<string>:8"


def test_a_valid_file_with_every_field(tmp_path: Path) -> None:
    path = tmp_path / "full.yaml"
    path.write_text(
        textwrap.dedent(
            """\
            name: full_1
            description: |
              Two lines
              of description
            severity: critical
            faults:
              - kind: toxic
                target: db
                type: slicer
                stream: upstream
                toxicity: 0.5
                attributes: {average_size: 10, size_variation: 3, delay: 100}
                start: 250ms
                duration: 1.5
              - kind: down
                target: "*"
                start: 2s
              - kind: stress
                type: disk
                attributes: {mb: 0.5, block_kb: 64, fsync: false}
                duration: 0.1m
            """
        )
    )
    s = load_file(path)
    assert (s.name, s.severity, s.description) == (
        "full_1",
        "critical",
        "Two lines\nof description\n",
    )
    slicer, down, disk = s.faults
    assert (slicer.target, slicer.type, slicer.stream, slicer.toxicity) == (
        "db",
        "slicer",
        "upstream",
        0.5,
    )
    assert slicer.attributes == {"average_size": 10, "size_variation": 3, "delay": 100}
    assert (slicer.start_s, slicer.duration_s) == (0.25, 1.5)
    assert (down.kind, down.target, down.start_s, down.duration_s) == ("down", "*", 2.0, None)
    assert disk.attributes == {"mb": 0.5, "block_kb": 64, "fsync": False}
    assert disk.duration_s == pytest.approx(6.0)
    assert slicer.source == f"{path}:7"
    assert down.source == f"{path}:15"
    assert s.targets == frozenset({"db"})


def test_defaults_of_a_minimal_toxic() -> None:
    (f,) = loads(HEAD + LATENCY).faults
    assert (f.target, f.stream, f.toxicity, f.start_s, f.duration_s) == (
        "*",
        "downstream",
        1.0,
        0.0,
        None,
    )
    assert isinstance(f.toxicity, float)


def test_a_plugin_fault_kind_loads_with_free_form_attributes() -> None:
    text = HEAD + textwrap.indent(
        textwrap.dedent(
            """\
            - kind: cache_poison
              target: api
              type: stale
              attributes: {names: [a.example, b.example], ttl: 5, nested: {enabled: true}}
              start: 1s
            - kind: leap_second
            """
        ),
        "  ",
    )
    dns, clock = loads(text).faults
    assert (dns.kind, dns.target, dns.type, dns.start_s) == ("cache_poison", "api", "stale", 1.0)
    assert dns.attributes == {
        "names": ["a.example", "b.example"],
        "ttl": 5,
        "nested": {"enabled": True},
    }
    assert (clock.kind, clock.target, clock.type) == ("leap_second", "*", None)
    assert clock.attributes == {}


def test_yaml_merge_keys_reuse_a_fault(tmp_path: Path) -> None:
    text = HEAD + textwrap.indent(
        textwrap.dedent(
            """\
            - &slow {kind: toxic, type: latency, attributes: {latency: 100}}
            - <<: *slow
              target: db
              stream: upstream
            """
        ),
        "  ",
    )
    first, second = loads(text).faults
    assert (second.type, second.target, second.stream) == ("latency", "db", "upstream")
    assert second.attributes == first.attributes


def test_unreadable_and_non_utf8_files(tmp_path: Path) -> None:
    with pytest.raises(ScenarioPathError, match=r"missing\.yaml: cannot read"):
        load_file(tmp_path / "missing.yaml")
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(b"name: s\ndescription: caf\xe9\n")
    with pytest.raises(
        ScenarioError, match=rf"^{re.escape(str(latin))}:2: invalid YAML: not UTF-8"
    ):
        load_file(latin)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("2s", 2.0),
        ("250ms", 0.25),
        ("1.5", 1.5),
        (1, 1.0),
        (0, 0.0),
        ("0.5m", 30.0),
        (" 3 s ", 3.0),
        ("1e-3s", 0.001),
    ],
)
def test_parse_duration(value: str | float, seconds: float) -> None:
    assert parse_duration(value) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "value", ["", "s", "abc", "-1", "1h", "1 2s", "nan", "inf", True, None, [1]]
)
def test_parse_duration_refuses(value: object) -> None:
    with pytest.raises(ValueError, match="expected a duration"):
        parse_duration(value)  # type: ignore[arg-type]
