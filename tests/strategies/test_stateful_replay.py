"""A stateful failure's scenario replays its steps: rules with their arguments, and each
fault put in place and taken away between them, on every chaos iteration."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from pytest_rafael.scenario.failures import record_failure
from pytest_rafael.scenario.loader import load_file, loads
from pytest_rafael.scenario.model import FaultSpec, ScenarioError, Step
from pytest_rafael.scenario.schedule_model import FaultSchedule

# A session service: a connection must say HELLO before GET. The client's bug: it
# remembers the HELLO across a reconnect, so after a reset its next GET is refused and it
# returns the refusal as the value. Only a reset *between* two GETs, then lifted, shows it.
CONFTEST = """
import contextlib, socket, socketserver, threading
import pytest

class Handler(socketserver.StreamRequestHandler):
    def handle(self):
        greeted = False
        with contextlib.suppress(OSError):
            for line in self.rfile:
                word = line.strip()
                if word == b"HELLO":
                    greeted, reply = True, b"OK"
                else:
                    reply = b"VALUE" if greeted else b"ERR who are you"
                self.wfile.write(reply + b"\\n")

class Server(socketserver.ThreadingTCPServer):
    daemon_threads = allow_reuse_address = True

class Client:
    def __init__(self, host, port):
        self.address, self.file, self.greeted = (host, port), None, False

    def get(self):
        try:
            if self.file is None:
                sock = socket.create_connection(self.address, timeout=1)
                self.file = sock.makefile("rwb")
                if not self.greeted:  # the bug: never reset when the connection drops
                    self._ask(b"HELLO")
                    self.greeted = True
            return self._ask(b"GET")
        except OSError:
            self.file = None
            return None  # an honest failure

    def _ask(self, word):
        self.file.write(word + b"\\n")
        self.file.flush()
        reply = self.file.readline()
        if not reply:
            raise ConnectionResetError("closed")
        return reply.strip().decode()

@pytest.fixture
def db(chaos_proxy):
    server = Server(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    yield chaos_proxy("db", "%s:%d" % server.server_address)
    server.shutdown()
    server.server_close()
"""

TEST = """
import pytest
from hypothesis.stateful import invariant, rule
from pytest_rafael.strategies import ChaosStateMachine
from conftest import Client

class SessionMachine(ChaosStateMachine):
    proxies = ("db",)
    toxics = ("reset_peer",)

    def __init__(self):
        super().__init__()
        self.client = Client(self.proxy("db").host, self.proxy("db").port)
        self.gets = 0

    @rule(times=__import__("hypothesis").strategies.integers(1, 2))
    def get(self, times):
        for _ in range(times):
            self.gets += 1
            assert self.client.get() in ("VALUE", None), "a refusal read as a value"

    @invariant()
    def counted(self):
        assert self.gets >= 0

@pytest.mark.chaos("session_replay")
def test_session(chaos, db):
    SessionMachine.run(chaos)

@pytest.mark.chaos("session_replay")
def test_no_machine(chaos, db):
    Client(db.host, db.port).get()

@pytest.mark.chaos("session_typo")
def test_typo(chaos, db):
    SessionMachine.run(chaos)

@pytest.mark.chaos("session_argument")
def test_argument(chaos, db):
    SessionMachine.run(chaos)
"""

SCENARIO = """
name: session_replay
description: a reset between two GETs, then lifted
severity: high
faults:
  - {kind: toxic, target: db, type: reset_peer, stream: downstream, attributes: {}}
steps:
  - rule: get
    arguments: {times: 1}
  - inject: 0
    at: 0.2s
  - rule: get
    arguments: {times: 1}
  - revert: 0
  - rule: get
    arguments: {times: 2}
"""


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_session=TEST)
    pytester.makeini("[pytest]\nrafael_report_dir = reports\nrafael_store = .rafael/rafael.db\n")
    (pytester.path / "regressions").mkdir()
    return pytester


def test_a_stepped_scenario_replays_the_failure_on_every_iteration(
    project: pytest.Pytester,
) -> None:
    (project.path / "regressions" / "session_replay.yaml").write_text(SCENARIO)
    typo = SCENARIO.replace("session_replay", "session_typo").replace(
        "rule: get\n    arguments: {times: 2}", "rule: put"
    )
    (project.path / "regressions" / "session_typo.yaml").write_text(typo)
    argument = SCENARIO.replace("session_replay", "session_argument").replace(
        "{times: 2}", "{times: 2, fast: true}"
    )
    (project.path / "regressions" / "session_argument.yaml").write_text(argument)
    result = project.runpytest_subprocess(
        "--rafael-chaos", "--rafael-scenarios=regressions", "--rafael-iterations=2"
    )
    out = result.stdout.str()
    # The machine's test fails on each iteration, at the step after the lifted reset;
    # its reference run (rules only, no faults) passes. Only traceback lines count: the
    # short summary repeats the message in full where the CI variable is set.
    raised = [
        line
        for line in result.stdout.lines
        if line.startswith("E ") and line.endswith("AssertionError: a refusal read as a value")
    ]
    assert len(raised) == 2, out
    result.stdout.fnmatch_lines(
        ["*rafael: replaying scenario 'session_replay', at step 5 of 5: get(times=2)*"]
    )
    # Running no machine under a stepped scenario is an error, not a pass.
    result.stdout.fnmatch_lines(["*replays the steps of a stateful failure*ChaosStateMachine*"])
    results = json.loads((project.path / "reports" / "results.json").read_text())
    [machine] = [t for t in results["tests"] if t["nodeid"].endswith("test_session")]
    assert [it["outcome"] for it in machine["iterations"]] == ["failed"] * 2
    for iteration in machine["iterations"]:
        [fault] = iteration["faults"]  # put in place and taken away at its steps
        assert fault["type"] == "reset_peer"
        assert fault["reverted_at_s"] is not None
        assert fault["reverted_at_s"] >= fault["applied_at_s"]
        assert fault["applied_at_s"] >= 0.2  # the step waited for its recorded time
        assert iteration["metrics"]["replay_step"] == "5 of 5: get(times=2)"
    assert machine["reference"]["outcome"] == "passed"
    [plain] = [t for t in results["tests"] if t["nodeid"].endswith("test_no_machine")]
    assert {it["outcome"] for it in plain["iterations"]} == {"error"}
    # A step naming no rule of the machine, or an argument its rule does not take, is
    # refused before anything runs: a setup error, not a failure of the code under test.
    result.stdout.fnmatch_lines(
        [
            "*step 5 calls 'put', which is not a rule of SessionMachine*",
            "*step 5: get(times, fast): got an unexpected keyword argument 'fast'*",
        ]
    )
    for name in ("test_typo", "test_argument"):
        [wrong] = [t for t in results["tests"] if t["nodeid"].endswith(name)]
        assert {it["outcome"] for it in wrong["iterations"]} == {"error"}
        assert all(it["faults"] == [] for it in wrong["iterations"])


STEPPED = """
name: x
description: d
severity: high
faults:
  - {kind: toxic, target: db, type: reset_peer, attributes: {}}
steps:
"""


@pytest.mark.parametrize(
    ("steps", "problem"),
    [
        ("  - inject: 1\n", "steps[0].inject': expected the number of a fault (0 to 0), got 1"),
        ("  - revert: 0\n", "steps[0].revert': faults[0] is not in place here"),
        ("  - inject: 0\n  - inject: 0\n", "steps[1].inject': faults[0] was put in place before"),
        ("  - {rule: a, inject: 0}\n", "expected exactly one of 'rule', 'inject' or 'revert'"),
        ("  - {inject: 0, arguments: {a: 1}}\n", "only a rule has arguments"),
        ("  - rule: get\n", "no step puts a fault in place"),
        ("  - {rule: 'not a name'}\n  - inject: 0\n", "expected a rule's name"),
    ],
)
def test_steps_are_checked_against_the_faults(steps: str, problem: str) -> None:
    with pytest.raises(ScenarioError, match=re.escape(problem)):
        loads(STEPPED + steps)


def test_a_stepped_fault_has_no_timing() -> None:
    text = STEPPED.replace("attributes: {}}", "attributes: {}, start: 1s}") + "  - inject: 0\n"
    with pytest.raises(ScenarioError, match="has no start, duration or every"):
        loads(text)


def _fault() -> FaultSpec:
    return FaultSpec(kind="toxic", target="db", type="reset_peer", attributes={})


def test_a_recorded_stateful_failure_reads_back_as_its_steps(tmp_path: Path) -> None:
    timed = FaultSchedule(
        (FaultSpec("toxic", "db", "reset_peer", start_s=0.003, duration_s=0.001),)
    )
    steps = (Step("rule", "put", {"k": "a"}), Step("inject", fault=0), Step("revert", fault=0))
    record = record_failure(
        timed, "t.py::test_kv", tmp_path, ["put(k='a')"], replay=((_fault(),), steps)
    )
    assert record.yaml_path is not None
    scenario = load_file(record.yaml_path)
    assert scenario.steps == steps
    assert scenario.faults == (_fault(),)  # untimed: the steps say when


def test_a_rule_argument_a_file_cannot_hold_keeps_the_timed_faults(tmp_path: Path) -> None:
    timed = FaultSchedule((FaultSpec("toxic", "db", "reset_peer", start_s=0.5),))
    steps = (Step("rule", "put", {"item": object()}), Step("inject", fault=0))
    record = record_failure(timed, "t.py::test_kv", tmp_path, replay=((_fault(),), steps))
    assert record.yaml_path is not None
    scenario = load_file(record.yaml_path)
    assert not scenario.steps
    assert scenario.faults[0].start_s == 0.5
    assert "put's argument 'item' is a object" in scenario.description
