"""The end of a run that went wrong, and inputs of the fixtures a test calls."""

from __future__ import annotations

import json
import sqlite3

import pytest
from rafael_plugin_helpers import read_results

COUNTING_CONFTEST = """

def pytest_rafael_run_finished(run):
    with open("run_finished.count", "a") as f:
        f.write(run.run_id + "\\n")
"""

FINE = """
import pytest

@pytest.mark.chaos("cpu_spike", iterations=1)
def test_fine():
    pass
"""


def _calls(project: pytest.Pytester) -> list[str]:
    path = project.path / "run_finished.count"
    return path.read_text().split() if path.exists() else []


def test_run_finished_fires_once_when_the_audit_chain_is_broken(
    project: pytest.Pytester,
) -> None:
    project.makeconftest((project.path / "conftest.py").read_text() + COUNTING_CONFTEST)
    project.makepyfile(FINE)
    assert project.runpytest_subprocess("--rafael-chaos").ret == 0
    assert len(_calls(project)) == 1
    with sqlite3.connect(project.path / ".rafael" / "rafael.db") as db:
        db.execute("UPDATE audit SET actor = 'mallory' WHERE id = 1")
    result = project.runpytest_subprocess("--rafael-chaos")
    assert result.ret == 1
    result.stdout.fnmatch_lines(["GATE FAILED: *the audit chain in *rafael.db is broken*"])
    assert len(_calls(project)) == 2  # once for each run, not twice for the broken one


STORE_GOES_BAD = """

@pytest.hookimpl(trylast=True)
def pytest_configure(config):
    (config.rootpath / "garbage.db").write_bytes(b"\\x00not sqlite" * 512)
"""


def test_run_finished_fires_once_when_the_store_fails_at_start(
    project: pytest.Pytester,
) -> None:
    # The store goes bad after pytest-rafael checked it, before the run records its start
    # (one that is bad from the outset is a usage error: no run, no run_finished).
    project.makeconftest(
        (project.path / "conftest.py").read_text() + COUNTING_CONFTEST + STORE_GOES_BAD
    )
    project.makepyfile(FINE)
    result = project.runpytest_subprocess("--rafael-chaos", "--rafael-store", "garbage.db")
    assert result.ret == 1
    result.stdout.fnmatch_lines(["GATE FAILED: pytest-rafael: run not recorded in *garbage.db*"])
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    assert len(_calls(project)) == 1


def test_chaos_proxy_takes_a_port_number_and_pins_a_name_to_its_address(
    project: pytest.Pytester,
) -> None:
    project.makepyfile("""
        import pytest

        @pytest.mark.chaos("network_latency", iterations=1)
        def test_ports(chaos_proxy, echo, rt, chaos):
            port = int(echo.address.rpartition(":")[2])
            by_port = chaos_proxy("db", port)
            assert by_port.upstream == echo.address
            by_name = chaos_proxy("named", f"localhost:{port}")
            # The name was checked as loopback and is pinned to that address: the
            # server is never asked to resolve it again.
            assert by_name.upstream in (f"127.0.0.1:{port}", f"[::1]:{port}")
            rt(by_port.host, by_port.port)

        @pytest.mark.chaos("network_latency", iterations=1)
        def test_not_a_port(chaos_proxy):
            chaos_proxy("db", [5432])

        @pytest.mark.chaos("network_latency", iterations=1)
        def test_asked_again(chaos_proxy, echo):
            port = int(echo.address.rpartition(":")[2])
            first = chaos_proxy("db", port)
            assert chaos_proxy("db", f"127.0.0.1:{port}") is first  # the same upstream
            chaos_proxy("db", port + 1)
    """)
    result = project.runpytest_subprocess("--rafael-chaos", "-p", "no:hypothesispytest")
    result.assert_outcomes(passed=2, failed=4)  # each test's reference run and iteration
    result.stdout.fnmatch_lines(
        ["*TypeError: chaos_proxy('db'): upstream must be 'host:port' or a port number, got list"]
    )
    result.stdout.fnmatch_lines(
        ["*ValueError: chaos_proxy: a proxy named 'db' already exists in this test, to 127.0.0.1:*"]
    )


def test_a_name_that_re_resolves_elsewhere_is_pinned_to_the_checked_address(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import socket

    from pytest_rafael.faults.network import check_upstream

    answers = iter(["127.0.0.1", "203.0.113.7"])  # DNS rebinding: loopback, then not

    def rebinding(host: str, port: int, *args: object, **kwargs: object) -> list[object]:
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (next(answers), port))]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    assert check_upstream("rebind.example:5432", ()) == "127.0.0.1:5432"
    with pytest.raises(ValueError, match="not a loopback address"):
        check_upstream("rebind.example:5432", ())


def test_chaos_record_caps_long_text_and_says_so_in_the_report(
    project: pytest.Pytester,
) -> None:
    project.makepyfile("""
        import math
        import pytest

        @pytest.mark.chaos("cpu_spike", iterations=1)
        def test_big(chaos):
            chaos.record(log="x" * 5_000_000, n=3)
            with pytest.raises(ValueError, match="finite"):
                chaos.record(bad=math.inf)
    """)
    assert project.runpytest_subprocess("--rafael-chaos", "-p", "no:hypothesispytest").ret == 0
    text = (project.path / "reports" / "results.json").read_text()
    assert len(text) < 100_000
    metrics = read_results(project)["tests"][0]["iterations"][0]["metrics"]
    assert metrics["n"] == 3
    assert metrics["log"].startswith("x" * 1000)
    assert metrics["log"].endswith("[cut: 5,000,000 characters recorded, 1000 kept]")
    assert read_results(project)["capped_metrics"] == [
        "test_chaos_record_caps_long_text_and_says_so_in_the_report.py::test_big [cpu_spike] "
        "iteration 0: log (cut: 5,000,000 characters recorded, 1000 kept)"
    ]
    html = (project.path / "reports" / "index.html").read_text()
    assert "iteration 0: log (cut: 5,000,000 characters recorded, 1000 kept)" in html


@pytest.mark.parametrize("marker", ['"cpu_spike"', '"no_such_scenario"'])
def test_collect_only_records_no_run_and_writes_no_report(
    project: pytest.Pytester, marker: str
) -> None:
    # --collect-only runs nothing: a run_started entry would read as a run cut short.
    project.makepyfile(FINE.replace('"cpu_spike"', marker))
    result = project.runpytest("--rafael-chaos", "--collect-only", "-q")
    if marker == '"cpu_spike"':
        result.stdout.fnmatch_lines(["*test_fine[[]cpu_spike-it0[]]", "2 tests collected*"])
    else:
        assert result.ret == pytest.ExitCode.INTERRUPTED
    assert not (project.path / ".rafael").exists()
    assert not (project.path / "reports").exists()
    assert "RAFAEL" not in result.stdout.str()


def test_a_chaos_run_without_chaos_tests_judges_nothing_and_closes_its_start(
    project: pytest.Pytester,
) -> None:
    project.makepyfile("def test_plain():\n    pass\n")
    gated = project.runpytest_subprocess("--rafael-chaos", "--rafael-min-fitness", "0.7")
    # A gate with nothing to judge must not pass a merge (a wrong path in CI).
    assert gated.ret == pytest.ExitCode.TESTS_FAILED
    gated.stdout.fnmatch_lines(["GATE FAILED: --rafael-min-fitness * no chaos-marked test ran*"])
    plain = project.runpytest_subprocess("--rafael-chaos")
    assert plain.ret == pytest.ExitCode.OK
    plain.stdout.fnmatch_lines(["rafael: no chaos-marked test ran under --rafael-chaos*"])
    assert not (project.path / "reports").exists()  # the last report stays as it was
    with sqlite3.connect(project.path / ".rafael" / "rafael.db") as db:
        events = db.execute("SELECT event_type, details FROM audit ORDER BY id").fetchall()
    assert [e for e, _ in events] == ["run_started", "run_finished"] * 2
    finished = [json.loads(d) for e, d in events if e == "run_finished"]
    assert [(f["status"], f["gate_passed"]) for f in finished] == [
        ("nothing measured", False),
        ("nothing measured", True),
    ]


def test_an_ip_literal_upstream_is_checked_without_a_lookup(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import socket

    from pytest_rafael.faults.network import check_upstream

    def no_lookup(*args: object, **kwargs: object) -> list[object]:
        raise AssertionError("an IP literal was looked up")

    monkeypatch.setattr(socket, "getaddrinfo", no_lookup)
    assert check_upstream("127.0.0.1:5432", ()) == "127.0.0.1:5432"
    assert check_upstream("[::1]:5432", ()) == "[::1]:5432"
    for outside in ("192.0.2.10:5432", "[2001:db8::1]:5432", "[::ffff:127.0.0.1]:5432"):
        with pytest.raises(ValueError, match="not a loopback address"):
            check_upstream(outside, ())
