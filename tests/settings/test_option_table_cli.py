"""The option table is the only source of defaults and environment variables: for every
option a ``rafael`` command takes, setting the option's variable changes what the
command does, exactly as it changes what the pytest plugin does."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_rafael import cli, settings
from pytest_rafael.results import Delta, Gate, RunResult
from pytest_rafael.store.core import Store

GENOME = "payments:\n  generation: 3\n  genes:\n    timeout: {seconds: 2.0}\n"


def _commands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _commands(sub, (*path, name))


def table_options_of_commands() -> set[tuple[str, str]]:
    """(command, setting) for every ``rafael`` command flag built from the table."""
    found = set()
    for path, parser in _commands(cli.build_parser()):
        for key in parser._defaults:
            if key.startswith("_rafael_setting_"):
                field, _flag = parser._defaults[key]
                found.add((" ".join(path), field))
    return found


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out + err


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "src.yaml").write_text(GENOME)
    monkeypatch.chdir(tmp_path)
    for opt in settings.OPTIONS:
        if opt.env:
            monkeypatch.delenv(opt.env, raising=False)
    return tmp_path


def _proposal(capsys: pytest.CaptureFixture[str]) -> str:
    code, out = run(capsys, "genome", "adopt", "payments", "--from", "src.yaml")
    assert code == 0, out
    found = re.search(r"proposal (\w+):", out)
    assert found, out
    return found.group(1)


def _guardian_genome(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The genome file each guardian command hands the guardian."""
    from pytest_rafael.genome import review_cli as cli_genome

    seen: list[Path] = []
    real = cli_genome.Guardian.open

    def spy(store: Any, root: Path, genome_file: Path, *a: Any, **kw: Any) -> Any:
        seen.append(Path(genome_file))
        return real(store, root, genome_file, *a, **kw)

    monkeypatch.setattr(cli_genome.Guardian, "open", spy)
    return seen


Check = Callable[[pytest.CaptureFixture[str], pytest.MonkeyPatch, Path], None]


def _store_missing(*argv: str) -> Check:
    """The command names the store from RAFAEL_STORE when it does not exist."""

    def check(capsys: pytest.CaptureFixture[str], mp: pytest.MonkeyPatch, tmp: Path) -> None:
        mp.setenv("RAFAEL_STORE", "env/elsewhere.db")
        code, out = run(capsys, *argv)
        assert code != 0, out
        assert "env/elsewhere.db" in out, out

    return check


def _vault_store(capsys: pytest.CaptureFixture[str], mp: pytest.MonkeyPatch, tmp: Path) -> None:
    (tmp / "not-a-store.db").write_text("garbage")
    mp.setenv("RAFAEL_STORE", "not-a-store.db")
    code, out = run(capsys, "vault", "search", "retry")
    assert code == 2, out
    assert "not-a-store.db: cannot read evidence" in out, out


def _empty_run() -> dict[str, Any]:
    at = "2026-11-22T18:00:00+00:00"
    return RunResult(
        run_id="run-0001",
        started_at=at,
        finished_at=at,
        duration_s=1.0,
        seed=1,
        chaos=True,
        toxiproxy_url="embedded",
        actor="ci@example",
        tests=(),
        delta=Delta(0.0, 0.0, 0.0, (), ()),
        gate=Gate(None, True, ()),
        extra={},
    ).to_dict()


def _report_out(capsys: pytest.CaptureFixture[str], mp: pytest.MonkeyPatch, tmp: Path) -> None:
    with Store(tmp / ".rafael" / "rafael.db") as store:
        store.save_run(_empty_run())
    mp.setenv("RAFAEL_REPORT_DIR", "env-reports")
    code, out = run(capsys, "report")
    assert code == 0, out
    assert (tmp / "env-reports" / "index.html").is_file()
    assert not (tmp / "reports").exists()


def _genome_show(capsys: pytest.CaptureFixture[str], mp: pytest.MonkeyPatch, tmp: Path) -> None:
    (tmp / "env-genome.yaml").write_text(GENOME)
    mp.setenv("RAFAEL_GENOME_FILE", "env-genome.yaml")
    code, out = run(capsys, "genome", "show")
    assert code == 0, out
    assert "payments  (generation 3" in out, out


def _genome_adopt(capsys: pytest.CaptureFixture[str], mp: pytest.MonkeyPatch, tmp: Path) -> None:
    (tmp / "env-genome.yaml").write_text(GENOME)
    mp.setenv("RAFAEL_GENOME_FILE", "env-genome.yaml")
    code, out = run(capsys, "genome", "adopt", "payments", "--from", "src.yaml", "--dry-run")
    # Adopting over the generation-3 genome of the env file makes generation 4; over the
    # (missing) default file it would stay 3.
    assert code == 0, out
    assert "adopting payments generation 4" in out, out


def _audit_verify_genome(
    capsys: pytest.CaptureFixture[str], mp: pytest.MonkeyPatch, tmp: Path
) -> None:
    _proposal(capsys)
    mp.setenv("RAFAEL_GENOME_FILE", "env-genome.yaml")
    code, out = run(capsys, "audit", "verify")
    assert code == 0, out
    assert "no genome file at env-genome.yaml" in out, out


def _compliance_genome(
    capsys: pytest.CaptureFixture[str], mp: pytest.MonkeyPatch, tmp: Path
) -> None:
    _proposal(capsys)
    (tmp / "env-genome.yaml").write_text(GENOME)
    mp.setenv("RAFAEL_GENOME_FILE", "env-genome.yaml")
    _, out = run(capsys, "audit", "compliance")
    assert "env-genome.yaml: 'payments' was not adopted through the guardian" in out, out


def _guardian_command(*argv: str) -> Check:
    def check(capsys: pytest.CaptureFixture[str], mp: pytest.MonkeyPatch, tmp: Path) -> None:
        pid = _proposal(capsys)
        seen = _guardian_genome(mp)
        mp.setenv("RAFAEL_GENOME_FILE", "env-genome.yaml")
        run(capsys, *(pid if a == "ID" else a for a in argv))
        assert seen, seen
        assert seen[-1] == (tmp / "env-genome.yaml").resolve(), seen

    return check


def _vault_dirs(capsys: pytest.CaptureFixture[str], mp: pytest.MonkeyPatch, tmp: Path) -> None:
    mp.setenv("RAFAEL_VAULT_DIRS", "no-such-vault")
    code, out = run(capsys, "vault", "search", "retry")
    assert code == 2, out
    assert "no-such-vault" in out, out


CASES: dict[tuple[str, str], Check] = {
    ("report", "store"): _store_missing("report"),
    ("report", "report_dir"): _report_out,
    ("genome show", "genome_file"): _genome_show,
    ("genome adopt", "genome_file"): _genome_adopt,
    ("genome adopt", "store"): _store_missing("genome", "adopt", "payments"),
    ("genome proposals", "store"): _store_missing("genome", "proposals"),
    ("genome approve", "store"): _store_missing("genome", "approve", "x", "--by", "a"),
    ("genome reject", "store"): _store_missing(
        "genome", "reject", "x", "--by", "a", "--reason", "r"
    ),
    ("genome proposals", "genome_file"): _guardian_command("genome", "proposals", "ID"),
    ("genome approve", "genome_file"): _guardian_command(
        "genome", "approve", "ID", "--by", "alice@example.org", "--key", "no-key"
    ),
    ("genome reject", "genome_file"): _guardian_command(
        "genome", "reject", "ID", "--by", "alice@example.org", "--reason", "no", "--key", "no-key"
    ),
    ("audit verify", "store"): _store_missing("audit", "verify"),
    ("audit verify", "genome_file"): _audit_verify_genome,
    ("audit export", "store"): _store_missing("audit", "export"),
    ("audit compliance", "store"): _store_missing("audit", "compliance"),
    ("audit compliance", "genome_file"): _compliance_genome,
    ("vault search", "store"): _vault_store,
    ("vault show", "store"): _store_missing("vault", "show", "x", "--store", "env/elsewhere.db"),
    ("vault recommend", "store"): _store_missing(
        "vault", "recommend", "db_failure", "--store", "env/elsewhere.db"
    ),
    ("vault search", "vault_dirs"): _vault_dirs,
    ("vault show", "vault_dirs"): _vault_dirs,
    ("vault recommend", "vault_dirs"): _vault_dirs,
}


def test_every_table_flag_of_every_command_has_an_env_case() -> None:
    used = table_options_of_commands()
    assert used, "no rafael command takes an option of the table"
    assert used <= set(CASES), sorted(used - set(CASES))
    for _command, field in used:
        assert settings.option(field).env, field


@pytest.mark.parametrize("case", sorted(CASES), ids=lambda c: f"{c[0]}-{c[1]}")
def test_env_var_is_honoured(
    case: tuple[str, str],
    project: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    CASES[case](capsys, monkeypatch, project)


def test_empty_store_variable_means_the_default(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAFAEL_STORE", "")
    code, out = run(capsys, "report")
    assert code == 2, out
    assert out.startswith("rafael report: .rafael/rafael.db: no rafael store"), out


@pytest.mark.parametrize(
    ("env", "folder"),
    [
        ({"RAFAEL_FAILURES_DIR": "env-failures"}, "env-failures"),
        ({"RAFAEL_STORE": "elsewhere/r.db"}, "elsewhere/failures"),
        ({}, ".rafael/failures"),
    ],
)
def test_from_failure_reads_the_plugins_failures_folder(
    project: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    env: dict[str, str],
    folder: str,
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    code, out = run(capsys, "scenarios", "from-failure")
    assert code == 2, out
    assert out.startswith(f"rafael scenarios: {folder}/index.json:"), out


def test_scenario_folders_from_the_environment(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = project / "env-scenarios"
    folder.mkdir()
    (folder / "solar.yaml").write_text(
        "name: solar_flare\ndescription: the sun\nseverity: low\n"
        "faults:\n  - {kind: toxic, target: db, type: latency, attributes: {latency: 10}}\n"
    )
    monkeypatch.setenv("RAFAEL_SCENARIO_DIRS", str(folder))
    for argv in (["scenarios", "list"], ["scenarios", "show", "solar_flare"]):
        code, out = run(capsys, *argv)
        assert code == 0, out
        assert "solar_flare" in out, out
    code, out = run(capsys, "scenarios", "validate")
    assert code == 0, out


def test_bad_env_value_is_one_line_naming_the_variable(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAFAEL_STORE", "   ")
    code, out = run(capsys, "report")
    assert code == 2
    assert (
        out == "rafael report: environment variable RAFAEL_STORE: expected a path, got an "
        "empty string\n"
    )


def test_ini_setting_reaches_the_command(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "pytest.ini").write_text("[pytest]\nrafael_store = db/from-ini.db\n")
    code, out = run(capsys, "report")
    assert code == 2, out
    assert f"{project / 'db' / 'from-ini.db'}: no rafael store" in out, out


def test_the_table_and_its_commands_do_not_import_pytest() -> None:
    code = (
        "import sys\n"
        "import pytest_rafael.settings, pytest_rafael.cli\n"
        "pytest_rafael.cli.build_parser()\n"
        "import pytest_rafael.resilience.runtime, pytest_rafael.scenario.schedules\n"
        "assert 'pytest' not in sys.modules, 'pytest imported'\n"
        "assert '_pytest' not in sys.modules, '_pytest imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_plugin_resolution_puts_failures_beside_the_store_unless_named(tmp_path: Path) -> None:
    def resolve(environ: dict[str, str]) -> settings.Settings:
        return settings.resolve_layers(
            lambda opt: [layer for layer in [settings.env_layer(opt, environ, tmp_path)] if layer],
            tmp_path,
        )

    assert resolve({}).failures_dir == tmp_path / ".rafael" / "failures"
    assert resolve({"RAFAEL_STORE": "s/r.db"}).failures_dir == tmp_path / "s" / "failures"
    named = resolve({"RAFAEL_STORE": "s/r.db", "RAFAEL_FAILURES_DIR": "f"})
    assert named.failures_dir == tmp_path / "f"


def test_genome_commands_share_one_flag_name(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "g.yaml").write_text(GENOME)
    for flag in ("--genome", "--file"):  # --file: the old spelling still works
        code, out = run(capsys, "genome", "show", flag, "g.yaml")
        assert code == 0, out
        assert "payments  (generation 3" in out


def test_rafael_version_prints_the_installed_version(capsys: pytest.CaptureFixture[str]) -> None:
    from importlib.metadata import version

    with pytest.raises(SystemExit) as exc:
        cli.main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"rafael (pytest-rafael) {version('pytest-rafael')}"
