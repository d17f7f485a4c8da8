"""``--rafael-store`` takes a postgresql:// URL (also ini and env) and
``--rafael-run-group`` ties shards together, defaulting to the CI's run id."""

from __future__ import annotations

import pytest

from pytest_rafael.plugin import options as settings

URL = "postgresql://ci@db.example:5433/rafael"


@pytest.mark.parametrize(
    ("args", "env", "ini"),
    [
        (["--rafael-store", URL], {}, ""),
        ([], {"RAFAEL_STORE": URL}, ""),
        ([], {}, f"rafael_store = {URL}"),
    ],
)
def test_a_postgresql_url_is_kept_as_given(
    pytester: pytest.Pytester, args: list[str], env: dict[str, str], ini: str
) -> None:
    if ini:
        pytester.makefile(".ini", tox=f"[pytest]\n{ini}\n")
    resolved = settings.resolve(pytester.parseconfig(*args), env)
    assert resolved.store == URL  # not a Path: that would fold "//" into "/"


def test_a_file_store_stays_a_path(pytester: pytest.Pytester) -> None:
    resolved = settings.resolve(pytester.parseconfig("--rafael-store", "x/r.db"), {})
    assert resolved.store == pytester.path / "x" / "r.db"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("postgresql://ci@db:port/rafael", "*--rafael-store: bad port in *"),
        ("mysql://h/db", "*--rafael-store: expected a file or a postgresql:// URL*"),
    ],
)
def test_a_bad_store_url_is_one_usage_line(
    pytester: pytest.Pytester, value: str, expected: str
) -> None:
    pytester.makepyfile("def test_x():\n    pass\n")
    result = pytester.runpytest("--rafael-store", value)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([expected])
    assert "Traceback" not in result.stderr.str()


def test_the_run_group_defaults_to_the_ci_run_id(pytester: pytest.Pytester) -> None:
    config = pytester.parseconfig()
    assert settings.resolve(config, {}).run_group is None
    ci = settings.resolve(config, {"GITHUB_RUN_ID": "987", "CI_PIPELINE_ID": "5"})
    assert ci.run_group == "987"
    assert ci.sources["run_group"] == "environment variable GITHUB_RUN_ID"
    assert settings.resolve(config, {"CI_PIPELINE_ID": "5"}).run_group == "5"
    given = pytester.parseconfig("--rafael-run-group", "nightly-7")
    assert settings.resolve(given, {"GITHUB_RUN_ID": "987"}).run_group == "nightly-7"
    env = settings.resolve(config, {"RAFAEL_RUN_GROUP": "g", "GITHUB_RUN_ID": "987"})
    assert env.run_group == "g"


def test_a_bad_run_group_names_its_source(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_x():\n    pass\n")
    result = pytester.runpytest("--rafael-run-group", "has space")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--rafael-run-group: expected a run group id*"])


def test_a_run_group_the_store_could_not_write_is_refused_up_front(
    pytester: pytest.Pytester,
) -> None:
    # Bytes that are not UTF-8 in the environment decode to surrogates: recorded, they
    # would lose the run at its very end. Refused first, naming the variable.
    config = pytester.parseconfig()
    for name in ("RAFAEL_RUN_GROUP", "GITHUB_RUN_ID"):
        with pytest.raises(
            pytest.UsageError, match=f"^pytest-rafael: environment variable {name}: "
        ):
            settings.resolve(config, {name: "x\udcff"})


def test_a_store_newer_than_this_package_is_refused_before_the_run(
    pytester: pytest.Pytester,
) -> None:
    import sqlite3

    from pytest_rafael.store.core import Store
    from pytest_rafael.store.schema import SCHEMA_VERSION

    db = pytester.path / "newer.db"
    with Store(db):
        pass
    with sqlite3.connect(db) as conn:
        conn.execute(
            "INSERT INTO rafael_schema (version, description, applied_at) VALUES (?, ?, ?)",
            (SCHEMA_VERSION + 1, "from the future", "2030-01-01T00:00:00Z"),
        )
    pytester.makepyfile("def test_x():\n    pass\n")
    result = pytester.runpytest_subprocess("--rafael-chaos", "--rafael-store", str(db))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--rafael-store: *newer.db: the store's schema is version*"])
