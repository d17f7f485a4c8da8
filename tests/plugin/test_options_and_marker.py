"""Options, ini keys, env vars and the chaos marker: validation and precedence."""

from __future__ import annotations

import pytest

PASSING = """
import pytest

@pytest.mark.chaos("network_latency")
def test_marked():
    pass
"""


def test_options_are_listed_in_one_group_with_their_ini_keys(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines(["pytest-rafael chaos testing:", "*--rafael-chaos*"])
    for flag in (
        "--rafael-iterations",
        "--rafael-seed",
        "--rafael-scenarios",
        "--rafael-toxiproxy",
        "--rafael-report",
        "--rafael-store",
        "--rafael-genome",
        "--rafael-min-fitness",
    ):
        assert flag in result.stdout.str()
    assert "rafael_iterations" in result.stdout.str()


def test_marker_is_registered_with_its_signature(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--markers")
    result.stdout.fnmatch_lines(
        [
            "@pytest.mark.chaos(*scenario_names, iterations=None, module=None, "
            "min_fitness=None, targets=None)*"
        ]
    )


@pytest.mark.parametrize(
    ("args", "env", "ini", "expected"),
    [
        (
            ["--rafael-iterations", "zero"],
            {},
            "",
            "*--rafael-iterations: expected a positive integer up to 10000, got 'zero'*",
        ),
        (["--rafael-iterations", "0"], {}, "", "*--rafael-iterations: expected a positive*"),
        (  # a typo's extra zeros: an error, not a collection that eats all memory
            ["--rafael-iterations", "1000000000000"],
            {},
            "",
            "*--rafael-iterations: expected a positive integer up to 10000, got '1000000000000'*",
        ),
        (
            [],
            {"RAFAEL_ITERATIONS": "-3"},
            "",
            "*environment variable RAFAEL_ITERATIONS: expected a positive integer*",
        ),
        (
            [],
            {},
            "rafael_iterations = many",
            "*ini key rafael_iterations in *tox.ini: expected a positive integer*",
        ),
        (
            ["--rafael-min-fitness", "1.5"],
            {},
            "",
            "*--rafael-min-fitness: expected a number between 0 and 1, got '1.5'*",
        ),
        (
            ["--rafael-toxiproxy", "ftp://x"],
            {},
            "",
            "*--rafael-toxiproxy: expected a Toxiproxy URL*",
        ),
        (["--rafael-seed", "abc"], {}, "", "*--rafael-seed: expected an integer seed*"),
        (
            ["--rafael-scenarios", "nope"],
            {},
            "",
            "*--rafael-scenarios: folder does not exist: *nope",
        ),
        (
            [],
            {},
            "rafael_scenario_dirs = missing",
            "*ini key rafael_scenario_dirs in *tox.ini: folder does not exist: *missing",
        ),
        (
            ["--rafael-chaos", "--rafael-toxiproxy", "http://127.0.0.1:1"],
            {},
            "",
            "*--rafael-toxiproxy: Toxiproxy at http://127.0.0.1:1: GET /version failed: *",
        ),
    ],
)
def test_bad_values_are_usage_errors_naming_their_source(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    env: dict[str, str],
    ini: str,
    expected: str,
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    if ini:
        pytester.makefile(".ini", tox=f"[pytest]\n{ini}\n")
    pytester.makepyfile(PASSING)
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([expected])
    assert "Traceback" not in result.stderr.str()


def test_precedence_cli_over_env_over_ini(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makefile(".ini", tox="[pytest]\nrafael_seed = 1\n")
    pytester.makepyfile(PASSING)
    # Without chaos the seed only rolls the embedded server's toxicity, and says so.
    assert "seed 1 (toxicity rolls)," in pytester.runpytest().stdout.str()
    monkeypatch.setenv("RAFAEL_SEED", "2")
    assert "seed 2 (toxicity rolls)," in pytester.runpytest().stdout.str()
    assert "seed 3 (toxicity rolls)," in pytester.runpytest("--rafael-seed", "3").stdout.str()


def test_a_missing_genome_file_is_named_at_the_top_of_a_chaos_run(
    pytester: pytest.Pytester,
) -> None:
    """A mistyped --rafael-genome ran every module without genes, unremarked, and the
    gate judged that as the shipped genome."""
    pytester.makepyfile(PASSING)
    (pytester.path / "rafael.genome.yaml").write_text("payments:\n  genes: {}\n")
    typo = pytester.runpytest("--rafael-chaos", "--rafael-genome", "rafael.genome.yml")
    typo.stdout.fnmatch_lines(
        [
            "rafael: genome file *rafael.genome.yml (given by --rafael-genome) does not "
            "exist: every module runs without genes, and that is what the gate judges*"
        ]
    )
    right = pytester.runpytest("--rafael-chaos", "--rafael-genome", "rafael.genome.yaml")
    assert "does not exist" not in right.stdout.str()
    assert "does not exist" not in pytester.runpytest("--rafael-genome", "x.yml").stdout.str()


def test_a_bad_genome_file_is_one_line_without_chaos_too(pytester: pytest.Pytester) -> None:
    """Without --rafael-chaos, the default genome file was first read by @antifragile
    inside each test: a pytest traceback in every test that called decorated code."""
    pytester.makepyfile("""
        from pytest_rafael import antifragile

        @antifragile("pay")
        def pay():
            return 1

        def test_pay():
            assert pay() == 1
    """)
    (pytester.path / "rafael.genome.yaml").write_text(
        "pay:\n  genes:\n    retry: {max_attempts: 0}\n"
    )
    result = pytester.runpytest_subprocess()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert result.stderr.lines[0] == (
        f"ERROR: pytest-rafael: genome file {pytester.path / 'rafael.genome.yaml'}:3: "
        "pay.genes.retry.max_attempts: must be between 1 and 20, got 0"
    )
    assert "Traceback" not in result.stdout.str() + result.stderr.str()


def test_a_store_that_does_not_exist_yet_is_named_at_the_top_of_a_chaos_run(
    pytester: pytest.Pytester,
) -> None:
    """A mistyped --rafael-store started an empty history, unremarked: the delta had
    nothing to compare with and earlier runs' pending proposals were out of sight."""
    pytester.makepyfile(PASSING)
    first = pytester.runpytest("--rafael-chaos", "--rafael-store", "ci/rafael.db")
    first.stdout.fnmatch_lines(
        [
            "rafael: store *rafael.db (given by --rafael-store) does not exist yet: this "
            "run starts a new history*"
        ]
    )
    assert (pytester.path / "ci" / "rafael.db").is_file()
    again = pytester.runpytest("--rafael-chaos", "--rafael-store", "ci/rafael.db")
    assert "does not exist yet" not in again.stdout.str()
    assert "does not exist yet" not in pytester.runpytest("--rafael-store", "x.db").stdout.str()


@pytest.mark.parametrize(
    ("mark", "expected"),
    [
        (
            '"no_such_scenario"',
            "*unknown scenario 'no_such_scenario'; valid: *db_failure*network_latency*",
        ),
        ("", "*name at least one scenario; valid: *"),
        ('"db_failure", iterations=0', "*iterations= must be a positive integer up to*, got 0*"),
        ('"db_failure", iterations="3"', "*iterations= must be a positive integer*, got '3'*"),
        ('"db_failure", iterations=10**12', "*up to 10000, got 1000000000000*"),
        ('"db_failure", min_fitness=2', "*min_fitness= must be a number between 0 and 1*"),
        ('"db_failure", module="no spaces"', "*module= must be a name like 'payments'*"),
        ('"db_failure", targets=["db"]', "*targets= must map scenario target names*"),
        ('"db_failure", retries=3', "*unknown argument(s) retries; valid: iterations*"),
        ('"db_failure", "db_failure"', "*scenario 'db_failure' is named twice*"),
        (
            '"db_failure", targets={"dbx": "pg"}',
            "*targets= renames 'dbx', but no fault of db_failure aims at it; their targets: db*",
        ),
    ],
)
@pytest.mark.parametrize("chaos_flag", [[], ["--rafael-chaos"]])
def test_bad_marker_arguments_are_collection_errors(
    pytester: pytest.Pytester, mark: str, expected: str, chaos_flag: list[str]
) -> None:
    pytester.makepyfile(f"""
        import pytest

        @pytest.mark.chaos({mark})
        def test_x():
            pass
    """)
    result = pytester.runpytest(*chaos_flag)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*ERROR collecting*", expected])
    assert "Traceback" not in result.stdout.str()


def test_without_chaos_a_marked_test_runs_once_without_faults(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile("""
        import pytest

        @pytest.mark.chaos("network_latency", "db_failure", iterations=4)
        def test_marked(chaos):
            assert chaos.active is False
            assert chaos.scenario is None
            assert chaos.iteration is None
    """)
    result = pytester.runpytest("-v")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*test_marked PASSED*"])
    assert not (pytester.path / "reports").exists()


def test_a_bad_guardian_table_stops_the_run_before_any_iteration(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyprojecttoml("[tool.rafael.guardian]\nbogus_key = 1\n")
    pytester.makepyfile("""
        import pytest

        @pytest.mark.chaos("cpu_spike", iterations=2)
        def test_x():
            pass
    """)
    result = pytester.runpytest_subprocess("--rafael-chaos", "--rafael-report=out")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*pyproject.toml*bogus_key*"])
    assert "Traceback" not in result.stderr.str()
    assert "passed" not in result.stdout.str()


def test_hypothesis_profile_from_the_environment_is_loaded(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HYPOTHESIS_PROFILE=rafael-ci (the examples' convention) loads the profile;
    Hypothesis itself reads only --hypothesis-profile. A subprocess: a profile loaded
    in this process would stay loaded for the rest of the suite."""
    pytester.makepyfile(
        """
        from hypothesis import settings

        def test_profile():
            assert settings.get_current_profile_name() == "rafael-ci"
            assert settings().derandomize and settings().deadline is None
        """
    )
    monkeypatch.setenv("HYPOTHESIS_PROFILE", "rafael-ci")
    pytester.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)
    monkeypatch.setenv("HYPOTHESIS_PROFILE", "rafael-cj")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*HYPOTHESIS_PROFILE=rafael-cj: no such profile (known: rafael, rafael-ci)"]
    )


def test_the_chaos_fixture_prints_in_one_short_line() -> None:
    """Hypothesis prints every argument of a falsifying example, the chaos fixture too."""
    from pytest_rafael.plugin.fixtures import Chaos

    chaos = Chaos(True, None, 2, 5, {}, _proxies={"db": None, "cache": None})  # type: ignore[dict-item]
    assert repr(chaos) == "Chaos(active=True, scenario=None, iteration=2, proxies=['cache', 'db'])"
