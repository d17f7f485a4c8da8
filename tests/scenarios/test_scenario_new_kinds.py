"""Scenario files with the flood and in-process kinds: attributes on the fault or under
``attributes:``, defaults filled in, a dump that reads back, and one line per bad value."""

from __future__ import annotations

import pytest

from pytest_rafael.scenario.dump import dump_scenario, same_scenario
from pytest_rafael.scenario.loader import loads
from pytest_rafael.scenario.model import ScenarioError

HEAD = "name: s\ndescription: new kinds\nseverity: low\nfaults:\n"


def test_new_kinds_load_with_defaults_and_round_trip() -> None:
    scenario = loads(
        HEAD
        + """\
  - kind: flood
    target: http://127.0.0.1:8080/items
    rate: 5000
    connection: new
  - kind: raise
    target: app.client:fetch
    attributes: {error: TimeoutError, message: slow}
    toxicity: 0.5
  - kind: delay
    target: app.client:Client.fetch
    seconds: 250ms
  - kind: disk_full
    path: /var/data
    bytes: 100
  - kind: dns_failure
    hosts: "*.internal"
  - kind: clock_skew
    offset: -2h
    start: 0.5s
""",
        "s.yaml",
    )
    flood, error, delay, disk, dns, clock = scenario.faults
    assert flood.attributes == {
        "rate": 5000,
        "concurrency": 16,
        "connection": "new",
        "timeout": 2.0,
    }
    assert (error.target, error.toxicity, error.attributes["error"]) == (
        "app.client:fetch",
        0.5,
        "TimeoutError",
    )
    assert error.probabilistic
    assert delay.attributes == {"seconds": 0.25}
    assert disk.attributes == {"path": "/var/data", "bytes": 100}
    assert dns.attributes == {"hosts": ["*.internal"], "error": "temporary"}
    assert (clock.attributes, clock.start_s) == ({"offset": -7200.0}, 0.5)
    assert same_scenario(loads(dump_scenario(scenario)), scenario)


@pytest.mark.parametrize(
    ("fault", "problem"),
    [
        (
            "  - kind: flood\n    target: http://192.168.1.1:80/\n    rate: 10\n",
            "s.yaml:6: field 'faults[0].target': flood target 'http://192.168.1.1:80/': only "
            "loopback addresses",
        ),
        (
            "  - kind: flood\n    rate: 0\n",
            "s.yaml:6: field 'faults[0].rate': expected a number above 0 to 50000",
        ),
        (
            "  - kind: flood\n    rate: 10\n    connection: close\n",
            "s.yaml:7: field 'faults[0].connection': expected one of keep-alive, new",
        ),
        (
            "  - kind: raise\n    target: a:b\n",
            "s.yaml:5: field 'faults[0]': a 'raise' fault needs 'error'",
        ),
        (
            "  - kind: delay\n    target: a:b\n    seconds: soon\n",
            "s.yaml:7: field 'faults[0].seconds': expected seconds",
        ),
        (
            "  - kind: disk_full\n    bytes: -1\n    path: /x\n",
            "s.yaml:6: field 'faults[0].bytes': expected an integer from 0",
        ),
        (
            "  - kind: dns_failure\n    hosts: [ok.example, 'bad host']\n",
            "s.yaml:6: field 'faults[0].hosts': expected host names",
        ),
        (
            "  - kind: clock_skew\n    offset: 1h\n    toxicity: 0.5\n",
            "s.yaml:7: field 'faults[0].toxicity': not used by kind 'clock_skew' faults",
        ),
    ],
)
def test_bad_values_are_one_line_at_their_line(fault: str, problem: str) -> None:
    with pytest.raises(ScenarioError) as info:
        loads(HEAD + fault, "s.yaml")
    assert str(info.value).startswith(problem)
    assert "\n" not in str(info.value)
