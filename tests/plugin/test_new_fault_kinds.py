"""The flood and in-process fault kinds in real chaos runs: observed by the code under
test, measured in results.json, reverted after every iteration (also a failing or an
interrupted one), and bad scenarios stopped at collection with one line."""

from __future__ import annotations

import pytest
from rafael_plugin_helpers import read_results, write_scenario

DEPENDENCY = """
def fetch():
    return "real"
"""

# Checked after the whole session, whatever ended it: every patch must be gone.
RESTORED_CHECK = """

def pytest_unconfigure(config):
    import builtins, datetime, os, socket, time, types
    import dependency
    builtin = types.BuiltinFunctionType
    restored = (dependency.fetch() == "real" and isinstance(builtins.open, builtin)
                and isinstance(os.write, builtin) and isinstance(time.time, builtin)
                and not hasattr(socket.getaddrinfo, "__wrapped__")
                and type(datetime.datetime) is type)
    open("restored.txt", "w").write(str(restored))
"""


def _scenarios(project: pytest.Pytester) -> None:
    folder = project.path / "scen"
    write_scenario(
        folder,
        "flood_api",
        """
name: flood_api
description: a steady flood of requests through the api proxy
severity: high
faults:
  - kind: flood
    target: api
    rate: 100
    concurrency: 4
    payload: "GET /hello HTTP/1.1"
""",
    )
    write_scenario(
        folder,
        "broken_dependency",
        """
name: broken_dependency
description: the dependency raises on every call
severity: high
faults:
  - kind: raise
    target: dependency:fetch
    error: ConnectionError
    message: injected outage
""",
    )
    write_scenario(
        folder,
        "local_faults",
        """
name: local_faults
description: disk full, DNS down and the clock a day ahead, all at once
severity: high
faults:
  - kind: disk_full
    path: out
    bytes: 4
  - kind: dns_failure
    hosts: [db.rafael.test]
  - kind: clock_skew
    offset: 1d
""",
    )


def test_new_kinds_are_observed_measured_and_reverted(project: pytest.Pytester) -> None:
    _scenarios(project)
    project.makepyfile(dependency=DEPENDENCY)
    project.makeconftest(project.path.joinpath("conftest.py").read_text() + RESTORED_CHECK)
    project.makepyfile(
        test_kinds="""
        import socket, threading, time
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        import pytest
        from dependency import fetch

        HITS = []

        class Hello(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            def do_GET(self):
                HITS.append(self.path)
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"hi")
            def log_message(self, *args):
                pass

        @pytest.mark.chaos("flood_api", iterations=1)
        def test_flooded(chaos_proxy, chaos):
            server = ThreadingHTTPServer(("127.0.0.1", 0), Hello)
            server.daemon_threads = True
            threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
            chaos_proxy("api", "127.0.0.1:%d" % server.server_address[1])
            # 14 served: with 4 requests in flight at most, the flood has completed 10.
            deadline = time.monotonic() + 20
            while chaos.active and len(HITS) < 14 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert len(HITS) >= 14 if chaos.active else HITS == []
            assert set(HITS) <= {"/hello"}
            server.shutdown()

        @pytest.mark.chaos("broken_dependency", iterations=1)
        def test_dependency_fails_the_test(chaos):
            assert fetch() == "real"      # fails under the fault: ConnectionError

        def test_after_the_failing_iteration():
            assert fetch() == "real"

        @pytest.mark.chaos("local_faults", iterations=1)
        def test_local_faults(chaos):
            if not chaos.active:
                return
            with pytest.raises(OSError, match="No space left"):
                with open("out/data", "w") as f:
                    f.write("more than four bytes")
            with pytest.raises(socket.gaierror):
                socket.getaddrinfo("db.rafael.test", 5432)
            # The kernel's file times are real: the process's wall clock is a day ahead.
            with open("stamp", "w"):
                pass
            import datetime, os
            assert 86000 < time.time() - os.stat("stamp").st_mtime < 87000
            assert 86000 < datetime.datetime.now().timestamp() - os.stat("stamp").st_mtime
    """
    )
    (project.path / "out").mkdir()  # `path: out` is relative to where pytest runs
    result = project.runpytest_subprocess("--rafael-chaos", "--rafael-scenarios", "scen")
    result.assert_outcomes(passed=6, failed=1)
    result.stdout.fnmatch_lines(["*ConnectionError: injected outage*"])
    tests = {t["scenario"]: t["iterations"][0] for t in read_results(project)["tests"]}
    flood = tests["flood_api"]["faults"][0]
    assert flood["kind"] == "flood"
    assert flood["target"] == "api"
    observed = flood["observed"]
    assert observed["completed"] >= 10
    assert observed["statuses"]["200"] == observed["completed"]
    assert {"p50", "p90", "p99", "max"} <= set(observed["latency_ms"])
    assert 0 < observed["achieved_rps"] <= 100
    assert tests["broken_dependency"]["outcome"] == "failed"
    assert tests["broken_dependency"]["faults"][0]["observed"] == {"calls": 1, "raised": 1}
    local = {f["kind"]: f["observed"] for f in tests["local_faults"]["faults"]}
    assert local["disk_full"]["failed_writes"] >= 1
    assert local["disk_full"]["written_bytes"] == 4
    assert local["dns_failure"]["failed_hosts"] == ["db.rafael.test"]
    assert local["clock_skew"] == {"offset_s": 86400.0}
    assert (project.path / "restored.txt").read_text() == "True"


def test_an_interrupted_iteration_is_reverted_too(project: pytest.Pytester) -> None:
    _scenarios(project)
    project.makepyfile(dependency=DEPENDENCY)
    project.makeconftest(project.path.joinpath("conftest.py").read_text() + RESTORED_CHECK)
    project.makepyfile(
        test_interrupt="""
        import pytest
        from dependency import fetch

        @pytest.mark.chaos("broken_dependency", iterations=1)
        def test_interrupted(chaos):
            if chaos.active:
                raise KeyboardInterrupt
    """
    )
    result = project.runpytest_subprocess("--rafael-chaos", "--rafael-scenarios", "scen")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    assert (project.path / "restored.txt").read_text() == "True"


@pytest.mark.parametrize(
    ("fault", "problem"),
    [
        (
            "  - kind: raise\n    target: dependency:nope\n    error: ConnectionError\n",
            "scen/bad.yaml:5: 'raise' fault: target 'dependency:nope': 'dependency' has no "
            "function 'nope'",
        ),
        (
            "  - kind: raise\n    target: dependency:fetch\n    error: NoSuchError\n",
            "scen/bad.yaml:5: 'raise' fault: error 'NoSuchError' is not an exception class",
        ),
    ],
    ids=["unknown-function", "unknown-error"],
)
def test_bad_faults_are_one_line_collection_errors(
    project: pytest.Pytester, fault: str, problem: str
) -> None:
    project.makepyfile(dependency=DEPENDENCY)
    write_scenario(
        project.path / "scen",
        "bad",
        "name: bad\ndescription: a bad fault\nseverity: low\nfaults:\n" + fault,
    )
    project.makepyfile(
        test_bad="""
        import pytest

        @pytest.mark.chaos("bad")
        def test_it():
            pass
    """
    )
    result = project.runpytest_subprocess("--rafael-scenarios", "scen")
    assert result.ret != 0
    lines = [line for line in result.outlines + result.errlines if problem in line]
    assert lines, result.stdout.str() + result.stderr.str()
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
