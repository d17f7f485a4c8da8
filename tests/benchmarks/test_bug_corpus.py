"""Smoke check of the planted-bug corpus (benchmarks/bugs): every bug stays quiet without
faults and shows under its minimal fault schedule, through the plugin's own
``Chaos.apply``. The hunt itself is benchmarks/bug_finding.py, outside the test run."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # the corpus is not part of the installed package
    sys.path.insert(0, str(ROOT))

from benchmarks.bugs import BUG_NAMES, load, names_of  # noqa: E402
from benchmarks.bugs._rig import rig, server  # noqa: E402
from pytest_rafael.plugin.fixtures import ToxiproxyServer  # noqa: E402


@pytest.fixture(scope="module")
def toxiproxy() -> Iterator[ToxiproxyServer]:
    with server() as running:
        yield running


# Written apart from the strategies, to measure how they generalize. Their quiet and
# minimal runs are checked by benchmarks/bug_finding.py before each hunt (they would add
# half a minute to the suite here); their shape is checked below.
HELDOUT = ("benchmarks.heldout", "benchmarks.heldout2")
EVERY_BUG = [("benchmarks.bugs", name) for name in BUG_NAMES] + [
    (package, name) for package in HELDOUT for name in names_of(package)
]


def test_the_corpus_has_twenty_bugs_with_one_line_descriptions() -> None:
    assert len(BUG_NAMES) >= 20
    assert all(len(names_of(package)) >= 10 for package in HELDOUT)
    for package, name in EVERY_BUG:
        bug = load(name, package)
        assert bug.description.strip()
        assert "\n" not in bug.description
        assert len(bug.minimal) >= 1
        assert bug.minimal.targets <= set(bug.targets)


@pytest.mark.parametrize("name", BUG_NAMES)
def test_quiet_without_faults_and_caught_by_its_minimal_schedule(
    name: str, toxiproxy: ToxiproxyServer, tmp_path: Path
) -> None:
    bug = load(name)
    with rig(bug, toxiproxy, failures_dir=tmp_path) as planted:
        # Quiet without faults, and caught by its minimal schedule within three tries.
        assert planted.why_invalid() is None


def test_a_corpus_folder_without_a_list_names_its_modules_and_its_broken_ones(
    tmp_path: Path,
) -> None:
    # A corpus written elsewhere (a folder given as --corpus) needs no BUG_NAMES: each
    # module not starting with "_" is a bug; one that does not load is named, not fatal.
    from benchmarks.bug_finding import _load
    from benchmarks.bugs import package_of

    folder = tmp_path / "elsewhere_bugs"
    folder.mkdir()
    source = (ROOT / "benchmarks" / "heldout" / "pool_recycles_broken.py").read_text()
    (folder / "pooled.py").write_text(source)
    (folder / "unclosed.py").write_text("x = (\n")
    (folder / "_helpers.py").write_text("")
    (folder / "conftest.py").write_text("")
    (folder / "no_system.py").write_text("DESCRIPTION = 'x'\nMINIMAL = []\n")
    package = package_of(str(folder))
    assert names_of(package) == ("no_system", "pooled", "unclosed")
    bugs, unloadable = _load(names_of(package), package)
    assert [bug.name for bug in bugs] == ["pooled"]
    assert dict(unloadable)["no_system"].endswith("AttributeError: no_system.py has no System")
    assert "unclosed does not load: SyntaxError" in dict(unloadable)["unclosed"]
    # A folder is imported under a name of its own: one called "json" (or "bugs") is
    # never mistaken for the package of that name.
    shadow = tmp_path / "json"
    shadow.mkdir()
    (shadow / "pooled.py").write_text(source)
    assert names_of(package_of(str(shadow))) == ("pooled",)
    with pytest.raises(ValueError, match="no such folder"):
        package_of(str(tmp_path / "missing"))
