"""A path option written with a space makes pytest choose the rootdir and config file
from it (pytest-dev/pytest#8846): the plugin warns and names the `=` form."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_rafael.plugin.rootdir_check import space_separated_paths


@pytest.fixture
def two_projects(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeini("[pytest]\nrafael_iterations = 2\n")
    pytester.makepyfile("def test_x():\n    pass\n")
    other = pytester.mkdir("other")
    (other / "tox.ini").write_text("[pytest]\nrafael_iterations = 7\n")
    other.joinpath("out").mkdir()
    return pytester


def test_space_form_warns_naming_the_equals_form(two_projects: pytest.Pytester) -> None:
    result = two_projects.runpytest_subprocess("--rafael-chaos", "--rafael-report", "other/out")
    # The pitfall itself: pytest loaded the other project's config file.
    result.stdout.fnmatch_lines(["rafael: chaos on, 7 iterations*"])
    result.stdout.fnmatch_lines(
        [
            "*PytestConfigWarning: pytest-rafael: '--rafael-report other/out' is written with a "
            "space, so pytest took 'other/out' for a test path when it chose the rootdir (*other) "
            "and the config file (*other/tox.ini); write --rafael-report=other/out "
            "(pytest-dev/pytest#8846)"
        ]
    )


def test_equals_form_keeps_the_project_and_does_not_warn(two_projects: pytest.Pytester) -> None:
    result = two_projects.runpytest_subprocess("--rafael-chaos", "--rafael-report=other/out")
    result.stdout.fnmatch_lines(["rafael: chaos on, 2 iterations, seed *, toxiproxy embedded"])
    assert "pytest-dev/pytest#8846" not in result.stdout.str()
    result.assert_outcomes(passed=1)


def test_detection_rules(tmp_path: Path) -> None:
    (tmp_path / "chaos").mkdir()
    assert space_separated_paths(["--rafael-scenarios", "chaos"], tmp_path) == [
        ("--rafael-scenarios", "chaos")
    ]
    # A value that is no existing path is not taken for a test path by pytest.
    assert space_separated_paths(["--rafael-report", "new_folder"], tmp_path) == []
    assert space_separated_paths(["--rafael-scenarios=chaos"], tmp_path) == []
    assert space_separated_paths(["--rafael-chaos", "chaos"], tmp_path) == []  # a flag
    # An explicit rootdir or config file makes pytest ignore the path arguments for them.
    assert space_separated_paths(["--rootdir=.", "--rafael-scenarios", "chaos"], tmp_path) == []
    assert space_separated_paths(["-c", "x.ini", "--rafael-scenarios", "chaos"], tmp_path) == []


def test_no_warning_when_the_space_form_changed_nothing(two_projects: pytest.Pytester) -> None:
    two_projects.mkdir("chaos")
    result = two_projects.runpytest_subprocess("--rafael-report", "chaos")
    result.stdout.fnmatch_lines(["rafael: chaos scenarios off, seed * (toxicity rolls)*"])
    assert "pytest-dev/pytest#8846" not in result.stdout.str()
    result.assert_outcomes(passed=1)
