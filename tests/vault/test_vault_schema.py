"""Every built-in pattern file is valid and complete; bad user patterns give one-line
``file:line: field: problem`` errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from vault_samples import GOOD

from pytest_rafael.vault import Vault, VaultError
from pytest_rafael.vault.loader import BUILTIN_DIR, parse_pattern
from pytest_rafael.vault.models import BUILTIN_THREATS, CATEGORIES, GENE_PARAMETERS

VAULT = Vault.load()
REPO = Path(__file__).resolve().parents[2]


def test_at_least_fifty_patterns_with_unique_ids() -> None:
    files = sorted(BUILTIN_DIR.glob("*.yaml"))
    assert len(files) >= 50
    assert len(VAULT) == len(files)
    # The file name is the id, so `rafael vault show ID` and the file are easy to match.
    assert {f.stem for f in files} == {p.id for p in VAULT}


def test_the_four_patterns_of_the_original_design() -> None:
    flutter = VAULT.get("flutter-supabase-adaptive-retry")
    assert flutter.category == "retry"
    assert "flutter+supabase" in flutter.technology_stack
    assert flutter.code_example.language == "dart"
    node = VAULT.get("nodejs-circuit-breaker")
    assert node.category == "circuit_breaker"
    assert "node.js" in node.technology_stack
    sql = VAULT.get("python-sql-injection-prevention")
    assert sql.category == "input_validation"
    assert sql.code_example.language == "python"
    limiter = VAULT.get("python-token-bucket-rate-limiter")
    assert limiter.category == "rate_limit"
    assert limiter.gene
    assert limiter.gene.name == "rate_limit"


def test_builtin_threats_match_the_builtin_scenario_files() -> None:
    folder = REPO / "scenarios"
    if not folder.is_dir():
        pytest.skip("no scenarios/ folder in this checkout")
    assert set(BUILTIN_THREATS) == {f.stem for f in folder.glob("*.yaml")}


def test_every_threat_has_patterns_and_categories_vary() -> None:
    for threat in BUILTIN_THREATS:
        assert len(VAULT.search(threat=threat, limit=None)) >= 2, threat
    assert len({p.category for p in VAULT}) >= 14
    assert set(VAULT.categories) <= set(CATEGORIES)
    techs = set(VAULT.technologies)
    for tech in (
        "python",
        "asyncio",
        "requests",
        "httpx",
        "sqlalchemy",
        "postgresql",
        "redis",
        "django",
        "fastapi",
        "celery",
        "kafka",
        "grpc",
        "node.js",
        "flutter+supabase",
    ):
        assert tech in techs, tech


@pytest.mark.parametrize("pattern", VAULT.patterns, ids=[p.id for p in VAULT.patterns])
def test_pattern_is_complete(pattern) -> None:  # type: ignore[no-untyped-def]
    assert 0.0 <= pattern.reliability_score <= 1.0
    assert pattern.references, "needs at least one reference"
    for ref in pattern.references:
        assert ref.url is None or re.match(r"^https://[a-z0-9.-]+\.[a-z]{2,}/", ref.url), ref.url
    assert pattern.tags
    if pattern.gene is not None:
        assert set(pattern.gene.parameters) <= set(GENE_PARAMETERS[pattern.gene.name])
    if pattern.code_example.language == "python":
        assert pattern.code_example.demo.strip(), "python examples carry a demo that runs"


def test_gene_pool_lists_gene_backed_patterns() -> None:
    pool = VAULT.gene_pool()
    assert len(pool) >= 20
    assert {g["name"] for g in pool} == set(GENE_PARAMETERS)
    for entry in pool:
        assert VAULT.get(entry["pattern_id"]).gene is not None
        assert set(entry) == {"name", "parameters", "pattern_id"}


def test_good_user_pattern_loads(tmp_path: Path) -> None:
    (tmp_path / "mine.yaml").write_text(GOOD)
    vault = Vault.load([tmp_path])
    assert vault.get("my-retry").gene is not None
    assert len(vault) == len(VAULT) + 1


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("category: retry", "category: magic", r":3: category: unknown category 'magic'"),
        (
            "reliability_score: 0.5",
            "reliability_score: 1.5",
            r":14: reliability_score: expected a number from 0 to 1",
        ),
        (
            "verification_status: community",
            "verification_status: maybe",
            r":13: verification_status: expected one of",
        ),
        (
            "  parameters: {max_attempts: 3}",
            "  parameters: {max_attempts: 0}",
            r":20: gene.parameters.max_attempts: 0 is out of range",
        ),
        (
            "  parameters: {max_attempts: 3}",
            "  parameters: {tries: 3}",
            r":20: gene.parameters.tries: retry has no parameter 'tries'",
        ),
        ("  name: retry\n", "  name: teleport\n", r":19: gene.name: unknown gene 'teleport'"),
        ("    x = 1", "    x = = 1", r":9: code_example.code: Python syntax error"),
        ("id: my-retry", "id: My Retry!", r":1: id: bad id"),
        ("tags: [retry]", "tags: [retry]\ncolour: blue", r":16: colour: unknown field"),
        ("problem: Things fail.\n", "", r":1: problem: missing required field"),
        ("  - title: A book", "  - title: A book\n    url: ftp://x", r":16: references: bad url"),
        ("threats: [flaky_network]", "threats: [flaky network]", r":12: threats: bad name"),
        ("solution: Try again.", "solution: [unclosed", r":\d+: yaml: "),
    ],
)
def test_bad_user_pattern_gives_one_line_error(
    tmp_path: Path, old: str, new: str, expected: str
) -> None:
    assert old in GOOD
    path = tmp_path / "bad.yaml"
    path.write_text(GOOD.replace(old, new))
    with pytest.raises(VaultError) as info:
        Vault.load([tmp_path])
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(str(path) + ":")
    assert re.search(expected, message), message


def test_duplicate_and_builtin_ids_are_refused(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(GOOD)
    (tmp_path / "b.yaml").write_text(GOOD)
    with pytest.raises(VaultError, match=r"b\.yaml:1: id: 'my-retry' is already defined in"):
        Vault.load([tmp_path])
    clash = tmp_path / "clash"
    clash.mkdir()
    (clash / "c.yaml").write_text(GOOD.replace("id: my-retry", "id: python-circuit-breaker"))
    with pytest.raises(VaultError, match="is a built-in pattern"):
        Vault.load([clash])


def test_missing_folder_and_known_threats(tmp_path: Path) -> None:
    with pytest.raises(VaultError, match=r"nope:1: folder: not a directory"):
        Vault.load([tmp_path / "nope"])
    text = GOOD.replace("threats: [flaky_network]", "threats: [solar_flare]")
    parse_pattern(text, "user.yaml")  # user scenarios may add threats
    with pytest.raises(VaultError, match=r"user.yaml:12: threats: unknown threat scenario"):
        parse_pattern(text, "user.yaml", known_threats=BUILTIN_THREATS)


def test_bare_on_key_of_fallback_gene_is_understood() -> None:
    # YAML 1.1 reads `on:` as True; the loader maps it back to the fallback parameter.
    text = GOOD.replace(
        "  name: retry\n  parameters: {max_attempts: 3}",
        "  name: fallback\n  parameters: {value: [], on: [OSError]}",
    )
    gene = parse_pattern(text, "f.yaml").gene
    assert gene is not None
    assert gene.parameters == {"value": [], "on": ["OSError"]}


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=400))
def test_any_text_is_a_pattern_or_a_one_line_error(text: str) -> None:
    try:
        parse_pattern(text, "fuzz.yaml")
    except VaultError as exc:
        message = str(exc)
    else:
        return
    assert message.startswith("fuzz.yaml:")
    assert "\n" not in message


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(GOOD.splitlines()), st.text(max_size=40))
def test_mutated_good_file_never_crashes_the_loader(line: str, replacement: str) -> None:
    try:
        parse_pattern(GOOD.replace(line, replacement, 1), "mut.yaml")
    except VaultError as exc:
        message = str(exc)
    else:
        return
    assert message.startswith("mut.yaml:")
    assert "\n" not in message
