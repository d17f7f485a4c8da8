"""``rafael vault ...``: output, exit codes, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from vault_samples import GOOD

from pytest_rafael import cli
from pytest_rafael.store.core import Store
from pytest_rafael.vault.evidence import record_adoption


@pytest.fixture(autouse=True)
def only_vault(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # Other command groups are built by other parts of the project; test ours alone.
    monkeypatch.setattr(cli, "COMMANDS", {"vault": cli.COMMANDS["vault"]})
    monkeypatch.delenv("RAFAEL_VAULT_DIRS", raising=False)
    monkeypatch.setenv("RAFAEL_STORE", str(tmp_path / "absent.db"))
    monkeypatch.chdir(tmp_path)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        code = cli.main(["vault", *argv])
    except SystemExit as exc:  # argparse usage errors
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_search_text(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "search", "retry", "postgres")
    assert code == 0
    assert err == ""
    assert out.splitlines()[0].startswith("postgresql-transaction-retry ")


def test_search_filters_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys, "search", "--category", "circuit_breaker", "--tech", "node.js", "--json"
    )
    assert code == 0
    found = json.loads(out)
    assert [p["id"] for p in found] == ["nodejs-circuit-breaker"]
    assert found[0]["gene"]["name"] == "circuit_breaker"
    code, out, _ = run(capsys, "search", "--threat", "db_failure", "--min-score", "0.9")
    assert code == 0
    assert len(out.splitlines()) >= 3


def test_search_no_match_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "search", "zzqqxx")
    assert (code, out, err) == (1, "", "no pattern matches\n")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["search", "--category", "magic"], "unknown category 'magic' (valid: "),
        (["search", "--threat", "solar_flare"], "unknown threat 'solar_flare'"),
        (["search", "--tech", "cobol"], "unknown technology 'cobol'"),
        (["search", "--min-score", "1.5"], "--min-score must be between 0 and 1"),
        (["search", "--limit", "0"], "--limit must be at least 1"),
        (
            ["show", "python-circuit-braker"],
            "unknown pattern 'python-circuit-braker'; did you mean python-circuit-breaker",
        ),
        (["recommend", "solar_flare"], "unknown scenario 'solar_flare'"),
        (["search", "--vault", "missing-dir"], "missing-dir:1: folder: not a directory"),
        (["search", "--store", "nope.db"], "--store nope.db: no such file"),
    ],
)
def test_bad_input_is_one_line_exit_2(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1, err
    assert message in err, err


def test_argparse_usage_error_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "search", "--min-score", "high")
    assert code == 2
    assert err.count("\n") == 1


def test_show(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "show", "python-token-bucket-rate-limiter")
    assert code == 0
    assert "Token bucket rate limiter  [python-token-bucket-rate-limiter]" in out
    assert "reliability:  0.90\n" in out
    assert "gene:         rate_limit(rate=100.0, burst=20)" in out
    assert "class TokenBucket" in out
    assert "https://" in out


def test_show_observed_beside_declared(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    with Store(tmp_path / "evidence.db") as store:
        for run_id in ("r1", "r2", "r3", "r4", "r5"):
            record_adoption(store, "python-token-bucket-rate-limiter", "api", 0.5, run_id)
    code, out, _ = run(
        capsys, "show", "python-token-bucket-rate-limiter", "--store", str(tmp_path / "evidence.db")
    )
    assert code == 0
    assert "reliability:  0.70 (declared 0.90, observed 0.50 n=5)" in out
    code, out, _ = run(
        capsys,
        "show",
        "python-token-bucket-rate-limiter",
        "--json",
        "--store",
        str(tmp_path / "evidence.db"),
    )
    doc = json.loads(out)
    assert doc["observed"] == {"score": 0.5, "n": 5}
    assert doc["reliability_score"] == 0.9
    assert doc["effective_score"] == pytest.approx(0.7)


def test_user_patterns_from_flag_and_env(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "team-patterns"
    folder.mkdir()
    (folder / "mine.yaml").write_text(GOOD)
    assert run(capsys, "show", "my-retry", "--vault", str(folder))[0] == 0
    monkeypatch.setenv("RAFAEL_VAULT_DIRS", str(folder))
    code, out, _ = run(
        capsys, "search", "--tech", "python", "--category", "retry", "--limit", "100"
    )
    assert code == 0
    assert "my-retry" in out


def test_recommend(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys,
        "recommend",
        "db_failure",
        "--genes",
        "retry",
        "--json",
        "--error",
        "sqlite3.OperationalError: database is locked",
    )
    assert code == 0
    recs = json.loads(out)
    assert 1 <= len(recs) <= 3
    assert all(r["why"].startswith("mitigates db_failure") for r in recs)


def test_validate(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    good = tmp_path / "good"
    good.mkdir()
    (good / "a.yaml").write_text(GOOD)
    assert run(capsys, "validate", str(good)) == (0, "1 pattern(s) valid\n", "")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "b.yaml").write_text(GOOD.replace("category: retry", "category: nope"))
    code, out, err = run(capsys, "validate", str(bad))
    assert code == 1
    assert out == ""
    assert err.strip().endswith(
        "b.yaml:3: category: unknown category 'nope' (known: " + err.split("(known: ")[1].strip()
    )
