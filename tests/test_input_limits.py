"""Inputs that are not what they claim to be (a device that never ends given as a genome
or scenario file, an anchor whose entry number no store can hold, a failures folder that
cannot be looked into, an audit key that is not text) are one error naming their source,
never a hang, a traceback or a lost run."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_rafael.genome.file import GenomeFileError, load_genome_file, parse_anchor
from pytest_rafael.scenario.loader import ScenarioPathError, load_file

ZERO = Path("/dev/zero")


@pytest.mark.skipif(not ZERO.exists(), reason="no /dev/zero here")
def test_an_endless_device_is_refused_before_it_fills_the_memory() -> None:
    with pytest.raises(GenomeFileError, match=r"^/dev/zero: cannot read: larger than"):
        load_genome_file(ZERO)
    with pytest.raises(ScenarioPathError, match=r"^/dev/zero: cannot read scenario file: larger"):
        load_file(ZERO)


def test_an_anchor_entry_beyond_64_bits_is_malformed(tmp_path: Path) -> None:
    sha = "a" * 64
    for entry in ("9" * 23, "9" * 5000):  # past SQLite's INTEGER; past int()'s digit limit
        text = f"# rafael-audit-anchor: entry={entry} sha256={sha}\npay: {{genes: {{}}}}\n"
        with pytest.raises(GenomeFileError, match=r"^g\.yaml:1: malformed audit anchor"):
            parse_anchor(text, "g.yaml")
    assert parse_anchor(f"# rafael-audit-anchor: entry=12 sha256={sha}\n", "g.yaml") is not None


def test_a_failures_folder_that_cannot_be_looked_into_holds_no_failures(tmp_path: Path) -> None:
    # Checked at the very end of a run: an error here would cost the run its report.
    from pytest_rafael.scenario.pending import has_failures

    assert not has_failures(tmp_path / ("x" * 300))  # ENAMETOOLONG
    (tmp_path / "f").mkdir()
    assert not has_failures(tmp_path / "f")
    (tmp_path / "f" / "index.json").write_text("{}")
    assert has_failures(tmp_path / "f")


def test_an_audit_key_that_is_not_text_is_one_error_naming_the_variable() -> None:
    from pytest_rafael.guardian.audit import AuditChainError, audit_key_from_env

    with pytest.raises(AuditChainError, match=r"^environment variable RAFAEL_AUDIT_KEY: not UTF"):
        audit_key_from_env({"RAFAEL_AUDIT_KEY": "k\udcff"})
    assert audit_key_from_env({"RAFAEL_AUDIT_KEY": "k1"}) == b"k1"


@pytest.mark.parametrize(
    ("name", "text"),
    [("pytest.ini", b"[pytest]\nx = \xff\n"), ("pyproject.toml", b'[tool.pytest]\nx = "\xff"\n')],
)
def test_a_project_ini_that_is_not_text_is_one_line(tmp_path: Path, name: str, text: bytes) -> None:
    from pytest_rafael.common.project_ini import ProjectIniError, find_project_ini

    (tmp_path / name).write_bytes(text)
    with pytest.raises(ProjectIniError, match=f"^{tmp_path / name}: not UTF-8 text$"):
        find_project_ini(tmp_path)
