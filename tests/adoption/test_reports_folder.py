"""The repository ships the default report folder with a README and its own .gitignore."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
from pathlib import Path

import pytest

from pytest_rafael.report.writer import ReportPaths
from pytest_rafael.settings import default

ROOT = Path(__file__).resolve().parents[2]
REPORTS = ROOT / "reports"


def test_the_default_report_folder_is_the_shipped_one() -> None:
    assert default("report_dir") == Path(REPORTS.name)
    assert (REPORTS / "README.md").is_file()


def test_the_readme_names_every_file_a_run_writes() -> None:
    text = (REPORTS / "README.md").read_text()
    for field in dataclasses.fields(ReportPaths):
        name = field.name.replace("_html", ".html").replace("_json", ".json")
        name = name.replace("_md", ".md").replace("_prom", ".prom")
        assert f"`{name}`" in text, name


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_generated_files_are_ignored_and_the_readme_is_not() -> None:
    inside = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--is-inside-work-tree"],
        capture_output=True,
        text=True,
        check=False,
    )
    if inside.returncode != 0:
        pytest.skip("not a git checkout")

    def ignored(name: str) -> bool:
        check = subprocess.run(
            ["git", "-C", str(ROOT), "check-ignore", "-q", f"reports/{name}"], check=False
        )
        return check.returncode == 0

    assert all(ignored(n) for n in ("index.html", "results.json", "summary.md", "metrics.prom"))
    assert not ignored("README.md")
    assert not ignored(".gitignore")
