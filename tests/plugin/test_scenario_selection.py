"""Choosing scenarios (--rafael-scenario, with suggestions for misspelt names) and scenario
folders that add up across the ini file, the environment and the command line."""

from __future__ import annotations

import json

import pytest

TWO_SCENARIOS = """
import pytest

@pytest.mark.chaos("network_latency", "slow_close")
def test_both(chaos_proxy, echo, rt):
    proxy = chaos_proxy("api", echo.address)
    rt(proxy.host, proxy.port)

@pytest.mark.chaos("network_latency")
def test_only_latency():
    pass
"""

COLLECT = ("--rafael-chaos", "--rafael-iterations", "1", "--collect-only", "-q")


def _collected(result: pytest.RunResult) -> list[str]:
    return [line for line in result.outlines if "::" in line]


def test_without_a_selection_every_scenario_is_collected(project: pytest.Pytester) -> None:
    project.makepyfile(TWO_SCENARIOS)
    ids = _collected(project.runpytest(*COLLECT))
    assert [i.split("::")[1] for i in ids] == [
        "test_both[network_latency-nofault]",
        "test_both[network_latency-it0]",
        "test_both[slow_close-nofault]",
        "test_both[slow_close-it0]",
        "test_only_latency[network_latency-nofault]",
        "test_only_latency[network_latency-it0]",
    ]


@pytest.mark.parametrize("how", ["cli", "env", "ini"])
def test_a_selection_keeps_only_the_named_scenarios(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    project.makepyfile(TWO_SCENARIOS)
    args = list(COLLECT)
    if how == "cli":
        args += ["--rafael-scenario", "slow_close"]
    elif how == "env":
        monkeypatch.setenv("RAFAEL_SELECT_SCENARIOS", "slow_close")
    else:
        project.makeini("[pytest]\nrafael_select_scenarios = slow_close\n")
    result = project.runpytest(*args)
    assert [i.split("::")[1] for i in _collected(result)] == [
        "test_both[slow_close-nofault]",
        "test_both[slow_close-it0]",
    ]
    # A test none of whose scenarios is selected is deselected, not skipped or run bare.
    result.stdout.fnmatch_lines(["*2/3 tests collected (1 deselected)*"])


def test_several_names_repeat_or_use_commas(project: pytest.Pytester) -> None:
    project.makepyfile(TWO_SCENARIOS)
    for args in (
        ["--rafael-scenario", "slow_close", "--rafael-scenario", "network_latency"],
        ["--rafael-scenario=slow_close,network_latency"],
    ):
        assert len(_collected(project.runpytest(*COLLECT, *args))) == 6  # with references


def test_a_leading_dash_leaves_a_slow_scenario_out(project: pytest.Pytester) -> None:
    project.makepyfile(TWO_SCENARIOS)
    result = project.runpytest(*COLLECT, "--rafael-scenario=-network_latency")
    assert [i.split("::")[1] for i in _collected(result)] == [
        "test_both[slow_close-nofault]",
        "test_both[slow_close-it0]",
    ]
    header = project.runpytest(
        "--rafael-chaos", "--collect-only", "--rafael-scenario=-network_latency"
    )
    header.stdout.fnmatch_lines(["rafael: scenarios selected: not network_latency"])
    result = project.runpytest(*COLLECT, "--rafael-scenario=-network_latenc")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*did you mean 'network_latency'?*"])


def test_a_selected_run_measures_only_the_selected_scenario(project: pytest.Pytester) -> None:
    project.makepyfile(TWO_SCENARIOS)
    result = project.runpytest_subprocess(
        "--rafael-chaos", "--rafael-iterations", "1", "--rafael-scenario=slow_close"
    )
    result.assert_outcomes(passed=2, deselected=1)  # the reference run and the iteration
    result.stdout.fnmatch_lines(["rafael: scenarios selected: slow_close"])
    results = json.loads((project.path / "reports" / "results.json").read_text())
    assert [(t["nodeid"].split("::")[1], t["scenario"]) for t in results["tests"]] == [
        ("test_both", "slow_close")
    ]
    # What the selection left out was not meant to run: not a "never exercised" step.
    assert results["scenario_catalog"] == ["slow_close"]
    summary = (project.path / "reports" / "summary.md").read_text()
    assert "network\\_latency" not in summary.partition("Scenarios never exercised")[2]


def test_without_chaos_the_selection_changes_nothing(project: pytest.Pytester) -> None:
    project.makepyfile(TWO_SCENARIOS)
    project.runpytest_subprocess("--rafael-scenario=slow_close").assert_outcomes(passed=2)


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (
            ["--rafael-scenario", "db_failur"],
            {},
            "*--rafael-scenario: unknown scenario 'db_failur'; did you mean 'db_failure'? valid: *",
        ),
        (
            [],
            {"RAFAEL_SELECT_SCENARIOS": "slow_clsoe"},
            "*environment variable RAFAEL_SELECT_SCENARIOS: unknown scenario 'slow_clsoe'; "
            "did you mean 'slow_close'?*",
        ),
        (["--rafael-scenario", "zzzz"], {}, "*unknown scenario 'zzzz'; valid: bandwidth_throttle*"),
    ],
)
def test_a_misspelt_selection_is_a_usage_error_with_a_suggestion(
    project: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    env: dict[str, str],
    expected: str,
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    project.makepyfile(TWO_SCENARIOS)
    result = project.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([expected])
    assert "Traceback" not in result.stderr.str()


def test_a_misspelt_marker_name_gets_a_suggestion(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        import pytest

        @pytest.mark.chaos("db_failur")
        def test_x():
            pass
    """)
    result = pytester.runpytest()
    result.stdout.fnmatch_lines(
        ["*unknown scenario 'db_failur'; did you mean 'db_failure'? valid: *"]
    )


SCENARIO = """\
name: {name}
description: A scenario from the {where} folder
severity: low
faults:
  - kind: toxic
    type: latency
    attributes: {{latency: 1}}
"""


def test_scenario_folders_add_up_across_ini_env_and_cli(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    for where in ("ini", "env", "cli"):
        folder = pytester.mkdir(f"{where}_scenarios")
        (folder / "s.yaml").write_text(SCENARIO.format(name=f"from_{where}", where=where))
    pytester.makeini("[pytest]\nrafael_scenario_dirs = ini_scenarios\n")
    monkeypatch.setenv("RAFAEL_SCENARIO_DIRS", str(pytester.path / "env_scenarios"))
    pytester.makepyfile("""
        import pytest

        @pytest.mark.chaos("from_ini", "from_env", "from_cli", "db_failure")
        def test_x():
            pass
    """)
    result = pytester.runpytest("--rafael-scenarios=cli_scenarios")
    result.assert_outcomes(passed=1)
    # The header says which folders were used and where each came from.
    result.stdout.fnmatch_lines(
        [
            "rafael: scenario folders: built-in, "
            "*ini_scenarios (ini key rafael_scenario_dirs in *), "
            "*env_scenarios (environment variable RAFAEL_SCENARIO_DIRS), "
            "*cli_scenarios (--rafael-scenarios)"
        ]
    )


def test_a_later_folder_overrides_an_earlier_one_by_name(pytester: pytest.Pytester) -> None:
    for where in ("ini", "cli"):
        folder = pytester.mkdir(f"{where}_scenarios")
        (folder / "s.yaml").write_text(SCENARIO.format(name="shared", where=where))
    pytester.makeini("[pytest]\nrafael_scenario_dirs = ini_scenarios\n")
    pytester.makepyfile("""
        import pytest

        def test_x(request):
            session = request.config.stash[__import__("pytest_rafael").plugin.SESSION]
            print("DESCRIPTION", session.catalog()["shared"].description)
    """)
    result = pytester.runpytest("-s", "--rafael-scenarios=cli_scenarios")
    result.stdout.fnmatch_lines(["*DESCRIPTION A scenario from the cli folder"])
