"""Bad input, one table: options, env vars, ini keys, markers, scenario YAML, genome
files, ``rafael`` commands and HTTP requests to the embedded Toxiproxy server.

Every row expects one line naming the source, no Python traceback, the documented exit
code (pytest's usage error, or the CLI's 1 for a failed check and 2 for bad input, or
an HTTP 4xx), and nothing lost: the store, its audit chain and the last report are
byte for byte what they were (the HTTP rows: the server still serves its proxies).
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pytest_rafael.toxiproxy import EmbeddedServer

USAGE = int(pytest.ExitCode.USAGE_ERROR)
COLLECT = int(pytest.ExitCode.INTERRUPTED)  # pytest's code for errors during collection

PASSING = """
import time
import pytest

@pytest.mark.chaos("network_latency", iterations=1)
def test_marked(chaos_proxy):
    chaos_proxy("db", "127.0.0.1:9")
    time.sleep(0.2)
"""


def laughs(depth: int, indent: str) -> str:
    """Billion-laughs anchors: each level is nine aliases of the one before."""
    lines = [f'{indent}l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, depth + 1):
        refs = ", ".join([f"*l{i - 1}"] * 9)
        lines.append(f"{indent}l{i}: &l{i} [{refs}]")
    return "\n".join(lines) + "\n"


DEEP = "[" * 100_000 + "]" * 100_000
GENOME_LAUGHS = "payments:\n  generation: 1\n  genes:\n    fallback:\n      value:\n" + laughs(
    9, "        "
)
SCENARIO_HEAD = (
    "name: bad\ndescription: a bad one\nseverity: low\nfaults:\n"
    "  - kind: dns_failure\n    target: db\n    attributes:\n"
)
SCENARIO_LAUGHS = SCENARIO_HEAD + laughs(9, "      ")
GOOD_SCENARIO = (
    "name: {name}\ndescription: fine\nseverity: low\nfaults:\n"
    "  - kind: toxic\n    target: '*'\n    type: latency\n"
    "    attributes: {{latency: 10}}\n"
)


@dataclass(frozen=True)
class Run:
    """One bad pytest invocation. ``files`` are written into the project first."""

    id: str
    expect: str  # the text the one line carries (its source and the problem)
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    ini: str = ""
    files: dict[str, str | bytes] = field(default_factory=dict)
    test: str = PASSING
    code: int = USAGE


def _genome(name: str, text: str | bytes) -> Run:
    return Run(
        f"genome-{name}",
        "genome file",
        ("--rafael-chaos", "--rafael-genome", "g.yaml"),
        files={"g.yaml": text},
    )


def _scenario(name: str, text: str | bytes, expect: str) -> Run:
    return Run(
        f"scenario-{name}",
        expect,
        ("--rafael-scenarios", "sc"),
        files={"sc/bad.yaml": text},
        code=COLLECT,
    )


def _marker(name: str, args: str, expect: str) -> Run:
    test = f"import pytest\n\n@pytest.mark.chaos({args})\ndef test_marked():\n    pass\n"
    return Run(f"marker-{name}", expect, test=test, code=COLLECT)


RUNS: tuple[Run, ...] = (
    # -- options --------------------------------------------------------------------
    Run(
        "opt-iterations-word",
        "--rafael-iterations: expected a positive integer",
        ("--rafael-iterations", "zero"),
    ),
    Run("opt-iterations-zero", "--rafael-iterations:", ("--rafael-iterations", "0")),
    Run("opt-iterations-negative", "--rafael-iterations:", ("--rafael-iterations", "-1")),
    Run("opt-seed-word", "--rafael-seed: expected an integer seed", ("--rafael-seed", "abc")),
    Run("opt-seed-negative", "--rafael-seed:", ("--rafael-seed", "-1")),
    Run(
        "opt-seed-2**70",
        "--rafael-seed: expected an integer seed from 0 to 2**63-1",
        ("--rafael-seed", str(2**70)),
    ),
    Run("opt-seed-2**63", "--rafael-seed:", ("--rafael-seed", str(2**63))),
    Run("opt-min-fitness-high", "--rafael-min-fitness:", ("--rafael-min-fitness", "1.5")),
    Run("opt-min-fitness-nan", "--rafael-min-fitness:", ("--rafael-min-fitness", "nan")),
    Run("opt-memory-cap", "--rafael-memory-cap:", ("--rafael-memory-cap", "2")),
    Run(
        "opt-control-timeout-inf",
        "--rafael-control-timeout: expected a positive number",
        ("--rafael-control-timeout", "inf"),
    ),
    Run(
        "opt-control-timeout-nan", "--rafael-control-timeout:", ("--rafael-control-timeout", "nan")
    ),
    Run("opt-control-timeout-zero", "--rafael-control-timeout:", ("--rafael-control-timeout", "0")),
    Run("opt-adopt-margin", "--rafael-adopt-margin:", ("--rafael-adopt-margin", "-0.1")),
    Run(
        "opt-weights-nan",
        "--rafael-fitness-weights: expected three or four numbers from 0 to 1000",
        ("--rafael-fitness-weights", "nan,nan,nan"),
    ),
    # Each finite, but their sum overflows: a passing test would score 0.
    Run(
        "opt-weights-huge",
        "--rafael-fitness-weights:",
        ("--rafael-fitness-weights", "1e308,1e308,1e308"),
    ),
    Run("opt-weights-inf", "--rafael-fitness-weights:", ("--rafael-fitness-weights", "inf,0,0")),
    Run("opt-weights-two", "--rafael-fitness-weights:", ("--rafael-fitness-weights", "1,2")),
    Run(
        "opt-report-name-too-long",
        "--rafael-report: a file or folder name is longer than 255 bytes",
        ("--rafael-report", "r" * 300),
    ),
    Run(
        "opt-store-name-too-long",
        "--rafael-store: a file or folder name is longer than 255 bytes",
        ("--rafael-store", "s" * 300),
    ),
    Run("opt-weights-zero", "--rafael-fitness-weights:", ("--rafael-fitness-weights", "0,0,0")),
    Run(
        "opt-toxiproxy-scheme",
        "--rafael-toxiproxy: expected a Toxiproxy URL",
        ("--rafael-toxiproxy", "ftp://x"),
    ),
    Run(
        "opt-toxiproxy-port",
        "--rafael-toxiproxy: bad port",
        ("--rafael-toxiproxy", "http://127.0.0.1:99999"),
    ),
    Run(
        "opt-toxiproxy-down",
        "--rafael-toxiproxy: Toxiproxy at http://127.0.0.1:1",
        ("--rafael-chaos", "--rafael-toxiproxy", "http://127.0.0.1:1"),
    ),
    Run(
        "opt-scenarios-missing",
        "--rafael-scenarios: folder does not exist",
        ("--rafael-scenarios", "nope"),
    ),
    Run("opt-vault-missing", "--rafael-vault: folder does not exist", ("--rafael-vault", "nope")),
    Run(
        "opt-scenario-unknown",
        "--rafael-scenario: unknown scenario",
        ("--rafael-scenario", "no_such_scenario"),
    ),
    Run(
        "opt-report-dev-null",
        "--rafael-report: /dev/null exists and is not a folder",
        ("--rafael-chaos", "--rafael-report", "/dev/null"),
    ),
    Run(
        "opt-report-file",
        "--rafael-report:",
        ("--rafael-chaos", "--rafael-report", "f.txt"),
        files={"f.txt": "x"},
    ),
    Run(
        "opt-report-under-file",
        "cannot be created",
        ("--rafael-chaos", "--rafael-report", "f.txt/reports"),
        files={"f.txt": "x"},
    ),
    Run(
        "opt-store-folder",
        "--rafael-store:",
        ("--rafael-chaos", "--rafael-store", "sc"),
        files={"sc/keep.txt": ""},
    ),
    # Not writable even for root (os.access says it is): probed by creating a file.
    Run(
        "opt-store-in-proc",
        "--rafael-store: /proc is not writable, so /proc/r.db cannot be created",
        ("--rafael-chaos", "--rafael-store=/proc/r.db"),
    ),
    Run(
        "opt-store-under-proc",
        "--rafael-store: /proc is not writable, so /proc/rafael/r.db cannot be created",
        ("--rafael-chaos", "--rafael-store=/proc/rafael/r.db"),
    ),
    # A store file that is not one is refused before the run, not "run not recorded"
    # at its end, after every fault was injected for nothing.
    Run(
        "opt-store-not-sqlite",
        "--rafael-store: ",
        ("--rafael-chaos", "--rafael-store", "notes.db"),
        files={"notes.db": "these are notes, not a database; " * 4},
    ),
    Run(
        "opt-genome-folder",
        "is a folder, not a genome file",
        ("--rafael-chaos", "--rafael-genome", "sc"),
        files={"sc/keep.txt": ""},
    ),
    # -- environment variables ------------------------------------------------------------
    Run("env-seed-2**70", "environment variable RAFAEL_SEED:", env={"RAFAEL_SEED": str(2**70)}),
    # Bytes that are not UTF-8 (surrogates once decoded): refused before the run, which
    # could not otherwise be recorded at its end.
    Run(
        "env-audit-key-not-text",
        "environment variable RAFAEL_AUDIT_KEY: not UTF-8 text",
        ("--rafael-chaos",),
        env={"RAFAEL_AUDIT_KEY": "k\udcff"},
    ),
    Run(
        "env-control-timeout-inf",
        "environment variable RAFAEL_CONTROL_TIMEOUT:",
        env={"RAFAEL_CONTROL_TIMEOUT": "inf"},
    ),
    Run(
        "env-weights-nan",
        "environment variable RAFAEL_FITNESS_WEIGHTS:",
        env={"RAFAEL_FITNESS_WEIGHTS": "nan,nan,nan"},
    ),
    Run(
        "env-weights-inf",
        "environment variable RAFAEL_FITNESS_WEIGHTS:",
        env={"RAFAEL_FITNESS_WEIGHTS": "inf,0,0"},
    ),
    Run(
        "env-iterations", "environment variable RAFAEL_ITERATIONS:", env={"RAFAEL_ITERATIONS": "-3"}
    ),
    Run(
        "env-min-fitness",
        "environment variable RAFAEL_MIN_FITNESS:",
        env={"RAFAEL_MIN_FITNESS": "abc"},
    ),
    Run(
        "env-memory-cap", "environment variable RAFAEL_MEMORY_CAP:", env={"RAFAEL_MEMORY_CAP": "-1"}
    ),
    Run(
        "env-chaos",
        "environment variable RAFAEL_CHAOS: expected true or false",
        env={"RAFAEL_CHAOS": "maybe"},
    ),
    Run(
        "env-toxiproxy",
        "environment variable RAFAEL_TOXIPROXY_URL:",
        env={"RAFAEL_TOXIPROXY_URL": "ftp://x"},
    ),
    Run(
        "env-report-dev-null",
        "environment variable RAFAEL_REPORT_DIR:",
        env={"RAFAEL_CHAOS": "1", "RAFAEL_REPORT_DIR": "/dev/null"},
    ),
    Run(
        "env-genome-laughs",
        "g.yaml:",
        env={"RAFAEL_CHAOS": "1", "RAFAEL_GENOME_FILE": "g.yaml"},
        files={"g.yaml": GENOME_LAUGHS},
    ),
    Run("env-seed-huge", "environment variable RAFAEL_SEED:", env={"RAFAEL_SEED": "9" * 40}),
    # -- ini keys ---------------------------------------------------------------------------
    Run("ini-iterations", "ini key rafael_iterations in", ini="rafael_iterations = many"),
    Run("ini-seed", "ini key rafael_seed in", ini=f"rafael_seed = {2**64}"),
    Run(
        "ini-control-timeout",
        "ini key rafael_control_timeout in",
        ini="rafael_control_timeout = inf",
    ),
    Run("ini-weights", "ini key rafael_fitness_weights in", ini="rafael_fitness_weights = inf,0,0"),
    Run("ini-scenario-dirs", "ini key rafael_scenario_dirs in", ini="rafael_scenario_dirs = nope"),
    Run("ini-min-fitness", "ini key rafael_min_fitness in", ini="rafael_min_fitness = 2"),
    Run("ini-chaos", "ini key rafael_chaos in", ini="rafael_chaos = perhaps"),
    Run(
        "ini-report-dev-null",
        "ini key rafael_report_dir in",
        ini="rafael_chaos = true\nrafael_report_dir = /dev/null",
    ),
    # -- genome files (read when the run is configured) ---------------------------------
    _genome(
        "max-attempts-0", "payments:\n  generation: 1\n  genes:\n    retry: {max_attempts: 0}\n"
    ),
    _genome("non-utf8", b"payments:\n  generation: 1\n\xff\xfe\n"),
    _genome("unknown-gene", "payments:\n  generation: 1\n  genes:\n    bogus: {x: 1}\n"),
    _genome("laughs", GENOME_LAUGHS),
    _genome("deep", "payments: " + DEEP + "\n"),
    _genome(
        "deep-block",
        "payments:\n" + "".join("  " * (i + 1) + f"k{i}:\n" for i in range(200)) + "\n",
    ),
    _genome("syntax", "payments: [unclosed\n"),
    _genome("list", "- payments\n"),
    _genome("module-twice", "payments: {generation: 1}\npayments: {generation: 2}\n"),
    _genome("recursive-alias", "payments: &a {generation: 1, genes: *a}\n"),
    # -- markers (collection errors) -----------------------------------------------------
    _marker("unknown-scenario", '"no_such_scenario"', "unknown scenario"),
    _marker("no-scenario", "", "@pytest.mark.chaos"),
    _marker("iterations-zero", '"network_latency", iterations=0', "iterations= must be"),
    _marker("module-int", '"network_latency", module=5', "module"),
    _marker("min-fitness", '"network_latency", min_fitness=7', "min_fitness"),
    _marker("unknown-kwarg", '"network_latency", bogus=1', "bogus"),
    # -- scenario YAML (collection errors) ------------------------------------------------
    _scenario("laughs", SCENARIO_LAUGHS, "bad.yaml:"),
    _scenario("deep", "name: " + DEEP + "\n", "bad.yaml:1: invalid YAML: nested deeper"),
    _scenario("syntax", "name: [\n", "bad.yaml:"),
    _scenario(
        "unknown-key",
        GOOD_SCENARIO.format(name="bad") + "colour: red\n",
        "bad.yaml:9: field 'colour': unknown key",
    ),
    _scenario("non-utf8", b"name: bad\n\xff\n", "bad.yaml:"),
    _scenario("recursive-alias", "name: bad\nfaults: &f [*f]\n", "bad.yaml:"),
)


def _digest(*paths: Path) -> dict[str, str]:
    """sha256 of each file under ``paths``: what a bad run must leave untouched."""
    found = {}
    for root in paths:
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for p in files:
            found[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return found


@pytest.fixture(scope="module")
def recorded_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project with one real chaos run recorded: store, audit chain and report."""
    root = tmp_path_factory.mktemp("recorded")
    (root / "test_marked.py").write_text(PASSING)
    (root / "tox.ini").write_text("[pytest]\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:hypothesispytest",
            "-q",
            "--rafael-chaos",
            "--rafael-seed",
            "1",
        ],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert (root / "reports" / "results.json").is_file()
    assert audit_verifies(root / ".rafael" / "rafael.db", root)
    return root


def _copy_recorded(src: Path, dest: Path) -> tuple[Path, Path]:
    shutil.copytree(src / ".rafael", dest / ".rafael")
    shutil.copytree(src / "reports", dest / "reports")
    return dest / ".rafael" / "rafael.db", dest / "reports"


def audit_verifies(store: Path, project: Path) -> bool:
    from pytest_rafael.cli import main

    return (
        main(
            [
                "audit",
                "verify",
                "--store",
                str(store),
                "--project-root",
                str(project),
                "--genome",
                str(project / "none.genome.yaml"),
            ]
        )
        == 0
    )


def assert_one_clean_line(output: str, expect: str) -> None:
    assert "Traceback" not in output, output
    assert "INTERNALERROR" not in output, output
    lines = [line for line in output.splitlines() if expect in line]
    assert len(lines) == 1, (expect, output)


@pytest.mark.parametrize("row", RUNS, ids=[r.id for r in RUNS])
def test_bad_pytest_input_is_one_line_and_loses_nothing(
    row: Run,
    recorded_run: Path,
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for key in [k for k in os.environ if k.startswith("RAFAEL_")]:
        monkeypatch.delenv(key)
    for key, value in row.env.items():
        monkeypatch.setenv(key, value)
    store, reports = _copy_recorded(recorded_run, pytester.path)
    before = _digest(store, reports)
    for name, content in row.files.items():
        path = pytester.path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        (path.write_bytes if isinstance(content, bytes) else path.write_text)(content)
    pytester.makeini(f"[pytest]\n{row.ini}\n")
    pytester.makepyfile(test_marked=row.test)
    # Hypothesis's summary hook imports all of Hypothesis after a collection error.
    result = pytester.runpytest("-p", "no:cacheprovider", "-p", "no:hypothesispytest", *row.args)
    output = result.stdout.str() + "\n" + result.stderr.str()
    assert result.ret == row.code, output
    assert_one_clean_line(output, row.expect)
    # Byte for byte as recorded: the audit chain verified there (recorded_run) still does.
    assert _digest(store, reports) == before
    capsys.readouterr()


# -- the rafael command ---------------------------------------------------------------------


@dataclass(frozen=True)
class Command:
    id: str
    argv: tuple[str, ...]
    expect: str
    code: int
    files: dict[str, str | bytes] = field(default_factory=dict)


COMMANDS: tuple[Command, ...] = (
    Command(
        "scenarios-validate-laughs",
        ("scenarios", "validate", "bad.yaml"),
        "bad.yaml:",
        1,
        {"bad.yaml": SCENARIO_LAUGHS},
    ),
    Command(
        "scenarios-validate-deep",
        ("scenarios", "validate", "bad.yaml"),
        "nested deeper",
        1,
        {"bad.yaml": "name: " + DEEP},
    ),
    Command("scenarios-validate-missing", ("scenarios", "validate", "nope.yaml"), "nope.yaml", 2),
    Command(
        "genome-show-laughs",
        ("genome", "show", "--file", "g.yaml"),
        "aliases expand",
        2,
        {"g.yaml": GENOME_LAUGHS},
    ),
    Command(
        "genome-show-deep",
        ("genome", "show", "--file", "g.yaml"),
        "nested deeper",
        2,
        {"g.yaml": "a: " + DEEP},
    ),
    Command(
        "genome-show-non-utf8",
        ("genome", "show", "--file", "g.yaml"),
        "not UTF-8",
        2,
        {"g.yaml": b"a:\n\xff\n"},
    ),
    Command("genome-show-folder", ("genome", "show", "--file", "."), "is a folder", 2),
    Command(
        "vault-validate-laughs",
        ("vault", "validate", "v"),
        "aliases expand",
        1,
        {"v/p.yaml": "id: x\n" + laughs(9, "")},
    ),
    Command("toxiproxy-serve-port", ("toxiproxy", "serve", "--port", "99999"), "port", 2),
    Command("toxiproxy-serve-port-word", ("toxiproxy", "serve", "--port", "x"), "port", 2),
    Command("toxiproxy-serve-empty-host", ("toxiproxy", "serve", "--host", ""), "--host", 2),
)


@pytest.mark.parametrize("row", COMMANDS, ids=[c.id for c in COMMANDS])
def test_bad_command_input_is_one_line(
    row: Command,
    recorded_run: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from pytest_rafael.cli import main

    store, reports = _copy_recorded(recorded_run, tmp_path)
    before = _digest(store, reports)
    for name, content in row.files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        (path.write_bytes if isinstance(content, bytes) else path.write_text)(content)
    monkeypatch.chdir(tmp_path)
    # In-process, as the installed script runs it: an exception main() lets out fails here.
    try:
        code = main(list(row.argv))
    except SystemExit as exc:  # argparse's usage errors
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    output = captured.out + captured.err
    assert code == row.code, output
    assert_one_clean_line(output, row.expect)
    assert _digest(store, reports) == before


# -- HTTP requests to the embedded Toxiproxy server ---------------------------------------


@dataclass(frozen=True)
class Request:
    id: str
    raw: bytes  # the whole request as sent
    status: int
    expect: str  # in the one-line body


def _post(path: str, body: str, extra: str = "") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body.encode())}\r\n"
        f"{extra}Connection: close\r\n\r\n{body}"
    ).encode()


def _chunked(size_line: str) -> bytes:
    return (
        f"POST /proxies HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        f"Connection: close\r\n\r\n{size_line}\r\n"
    ).encode() + b"a" * 4096


REQUESTS: tuple[Request, ...] = (
    Request("chunk-negative", _chunked("-1"), 400, "invalid chunk size"),
    Request("chunk-plus", _chunked("+10"), 400, "invalid chunk size"),
    Request("chunk-0x", _chunked("0x10"), 400, "invalid chunk size"),
    Request("chunk-huge", _chunked("f" * 17), 400, "invalid chunk size"),
    Request("chunk-over-limit", _chunked("7fffffff"), 400, "too large"),
    Request(
        "content-length-negative",
        b"POST /proxies HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\nConnection: close\r\n\r\n",
        400,
        "Content-Length",
    ),
    Request(
        "content-length-huge",
        b"POST /proxies HTTP/1.1\r\nHost: x\r\n"
        b"Content-Length: 99999999999\r\nConnection: close\r\n\r\n",
        400,
        "Content-Length",
    ),
    Request(
        "toxicity-1e999",
        _post("/proxies/kept/toxics", '{"type": "latency", "toxicity": 1e999}'),
        400,
        "toxicity",
    ),
    Request(
        "toxicity-nan",
        _post("/proxies/kept/toxics", '{"type": "latency", "toxicity": NaN}'),
        400,
        "invalid character",
    ),
    Request(
        "latency-2**62",
        _post(
            "/proxies/kept/toxics",
            json.dumps({"type": "latency", "attributes": {"latency": 2**62}}),
        ),
        400,
        "latency",
    ),
    Request(
        "jitter-1e300",
        _post(
            "/proxies/kept/toxics", json.dumps({"type": "latency", "attributes": {"jitter": 1e300}})
        ),
        400,
        "jitter",
    ),
    Request(
        "toxic-update-inf",
        _post("/proxies/kept/toxics/slow", '{"toxicity": -1e999}'),
        400,
        "toxicity",
    ),
    Request("bad-json", _post("/proxies", "{nope"), 400, "bad request body"),
    Request("body-not-object", _post("/proxies", "[1, 2]"), 400, "bad request body"),
    Request(
        "unknown-toxic-type",
        _post("/proxies/kept/toxics", '{"type": "gremlins"}'),
        400,
        "toxic type",
    ),
)


@pytest.fixture(scope="module")
def server() -> Iterator[EmbeddedServer]:
    with EmbeddedServer() as srv:
        conn = http.client.HTTPConnection(srv.host, srv.port, timeout=10)
        conn.request(
            "POST",
            "/proxies",
            json.dumps({"name": "kept", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:9"}),
        )
        response = conn.getresponse()
        response.read()
        assert response.status == 201
        conn.request(
            "POST",
            "/proxies/kept/toxics",
            json.dumps({"name": "slow", "type": "latency", "attributes": {"latency": 5}}),
        )
        response = conn.getresponse()
        response.read()
        assert response.status == 200
        conn.close()
        yield srv


def _state(srv: EmbeddedServer) -> object:
    conn = http.client.HTTPConnection(srv.host, srv.port, timeout=10)
    conn.request("GET", "/proxies")
    body = json.loads(conn.getresponse().read())
    conn.close()
    return body


@pytest.mark.parametrize("row", REQUESTS, ids=[r.id for r in REQUESTS])
def test_bad_http_request_is_one_line_and_changes_nothing(
    row: Request, server: EmbeddedServer
) -> None:
    before = _state(server)
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        with contextlib.suppress(OSError):  # the server may stop reading
            sock.sendall(row.raw)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.split(b" ")[1] == str(row.status).encode(), reply
    text = body.decode()
    for word in ("Traceback", "Infinity", "NaN"):
        assert word not in text
    assert len(text.strip().splitlines()) == 1, text
    assert row.expect in text
    assert _state(server) == before
