"""rafael.genome.yaml I/O, engine state in the store, and `rafael genome show|diff|adopt`."""

from __future__ import annotations

import os
import re
import stat
import subprocess
from pathlib import Path

import pytest

from pytest_rafael.cli import CommandError, _Parser
from pytest_rafael.genome import cli as genome_cli
from pytest_rafael.genome.evolution import Engine
from pytest_rafael.genome.file import GenomeFileError, load_genome_file, write_genome_file
from pytest_rafael.genome.fitness import Measurement
from pytest_rafael.genome.genome import Genome
from pytest_rafael.genome.state import engine_states, load_engine_state, save_engine_state
from pytest_rafael.store.core import Store

PAY = Genome.from_dict(
    "payments",
    {
        "generation": 3,
        "lineage": ["abc"],
        "genes": {
            "retry": {
                "max_attempts": 3,
                "base_delay": 0.05,
                "max_delay": 1.0,
                "multiplier": 2.0,
                "jitter": 0.1,
            },
            "circuit_breaker": {"failure_threshold": 5, "reset_timeout": 30.0},
            "timeout": {"seconds": 2.0},
            "fallback": {"value": {"status": "queued"}, "on": ["ConnectionError"]},
        },
    },
)


def test_missing_file_is_empty(tmp_path: Path) -> None:
    assert load_genome_file(tmp_path / "nope.yaml") == {}


def test_design_md_example_loads(tmp_path: Path) -> None:
    p = tmp_path / "rafael.genome.yaml"
    p.write_text(
        "payments:                      # the module name\n"
        "  generation: 3\n"
        "  genes:\n"
        "    retry: {max_attempts: 3, base_delay: 0.05, max_delay: 1.0, multiplier: 2.0,"
        " jitter: 0.1}\n"
        "    circuit_breaker: {failure_threshold: 5, reset_timeout: 30.0,"
        " half_open_max_calls: 1}\n"
        "    timeout: {seconds: 2.0}\n"
    )
    g = load_genome_file(p)["payments"]
    assert g.generation == 3
    assert g.genes["timeout"]["seconds"] == 2.0


def test_write_then_read_round_trips_atomically(tmp_path: Path) -> None:
    p = tmp_path / "sub" / "rafael.genome.yaml"
    other = Genome.from_dict("search", {"genes": {}})
    write_genome_file(p, {"payments": PAY, "search": other})
    text = p.read_text()
    assert text.index("payments:") < text.index("search:")  # one section per module
    assert "    retry: {max_attempts: 3" in text  # one readable line per gene
    back = load_genome_file(p)
    assert back["payments"] == PAY
    assert back["search"] == other
    assert sorted(os.listdir(p.parent)) == ["rafael.genome.yaml"]  # no temp file left
    os.chmod(p, 0o640)
    write_genome_file(p, {"payments": PAY})
    assert stat.S_IMODE(p.stat().st_mode) == 0o640  # mode kept on rewrite
    assert set(load_genome_file(p)) == {"payments"}


def test_a_rewrite_keeps_the_comments_a_person_wrote(tmp_path: Path) -> None:
    """An adoption rewrites the file: the header a team wrote and the note above a
    module stay; the generated header and the previous audit anchor are not doubled."""
    p = tmp_path / "rafael.genome.yaml"
    write_genome_file(p, {"payments": PAY, "search": Genome.from_dict("search", {"genes": {}})})
    generated = p.read_text().splitlines()
    header, body = generated[:3], generated[3:]
    anchor = "# rafael-audit-anchor: entry=7 sha256=" + "0" * 64
    at = body.index("search:")
    p.write_text(
        "\n".join(
            [
                *header,
                anchor,
                "# Owned by the payments team.",
                *body[:at],
                "# search is read-only: no retry needed.",
                *body[at:],
            ]
        )
        + "\n"
    )
    changed = Genome.from_dict(
        "payments", {"generation": 4, "genes": {"timeout": {"seconds": 1.0}}}
    )
    write_genome_file(p, {"payments": changed, "search": Genome.from_dict("search", {"genes": {}})})
    text = p.read_text()
    assert text.splitlines()[:4] == [*header, "# Owned by the payments team."]
    assert "# search is read-only: no retry needed.\nsearch:" in text
    assert "rafael-audit-anchor" not in text  # an anchor is the adoption's to write
    assert load_genome_file(p)["payments"] == changed
    write_genome_file(p, load_genome_file(p))
    assert p.read_text() == text  # nothing piles up from one rewrite to the next


def test_a_rewrite_keeps_the_order_of_the_modules_so_comments_stay_with_theirs(
    tmp_path: Path,
) -> None:
    """Sorted anew, the note above the first module would end up above another one."""
    p = tmp_path / "rafael.genome.yaml"
    p.write_text(
        "# zeta: owned by the auth squad\n"
        "zeta:\n  genes: {timeout: {seconds: 30.0}}\n"
        "# alpha: read-only\n"
        "alpha:\n  genes: {}\n"
    )
    genomes = load_genome_file(p)
    genomes["beta"] = Genome.from_dict("beta", {"genes": {}})
    write_genome_file(p, genomes)
    lines = p.read_text().splitlines()
    assert lines[lines.index("zeta:") - 1] == "# zeta: owned by the auth squad"
    assert lines[lines.index("alpha:") - 1] == "# alpha: read-only"
    assert lines.index("zeta:") < lines.index("alpha:") < lines.index("beta:")  # new: last


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "payments:\n  genes:\n    retry:\n      max_attempts: 99\n",
            ":4: payments.genes.retry.max_attempts: must be between 1 and 20, got 99",
        ),
        ("payments:\n  genes:\n    retry: {max_attempts: 3\n", ":4: invalid YAML"),
        ("- a\n- b\n", ":1: expected a mapping of module names"),
        (
            "payments:\n  generation: 1\npayments:\n  generation: 2\n",
            ":3: payments: module given twice",
        ),
        ("payments:\n  genes:\n    warp: {}\n", ":3: payments.genes.warp: unknown gene"),
        ("payments:\n  color: red\n", ":2: payments.color: unknown key"),
    ],
)
def test_bad_files_give_path_line_field(tmp_path: Path, text: str, message: str) -> None:
    p = tmp_path / "g.yaml"
    p.write_text(text)
    with pytest.raises(GenomeFileError) as info:
        load_genome_file(p)
    assert str(info.value).startswith(str(p))
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def _measure(score: float) -> Measurement:
    return Measurement.from_iteration("passed", 1.0, {}, {"success_rate": score}, None)


def _trained_engine(base: Genome) -> Engine:
    e = Engine("tests/test_pay.py::test_charge::db_failure", base, seed=1)
    better = Genome.from_dict(
        "payments", {"generation": 4, "genes": {"retry": {"max_attempts": 6}}}
    )
    for s in (0.2, 0.25, 0.2):
        e.observe(0, base, _measure(s))
    for s in (0.95, 0.96, 0.97):
        e.observe(1, better, _measure(s))
    return e


@pytest.mark.backends
def test_engine_state_round_trip_in_store(store_target: Path | str) -> None:
    with Store(store_target) as store:
        assert load_engine_state(store, "k") is None
        e = _trained_engine(PAY)
        save_engine_state(store, "k", "payments", e.state())
        again = load_engine_state(store, "k")
        assert again == e.state()
        e2 = Engine("k", PAY, seed=2, state=again)
        assert e2.observations == 6
        assert e2.verdict().propose
        assert [k for k, _, _ in engine_states(store, "payments")] == ["k"]
        assert engine_states(store, "other") == []
        store.conn.execute("UPDATE genome_engine_state SET state_json = '{bad'")
        assert load_engine_state(store, "k") is None


def run_cli(*argv: str) -> int:
    parser = _Parser(prog="rafael genome")
    sub = parser.add_subparsers(dest="subcommand", parser_class=_Parser)
    genome_cli.register(sub, parser)
    args = parser.parse_args(list(argv))
    result: int = args.func(args)
    return result


def test_cli_show(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "g.yaml"
    write_genome_file(p, {"payments": PAY})
    assert run_cli("show", "--file", str(p)) == 0
    out = capsys.readouterr().out
    assert "payments  (generation 3" in out
    assert "retry: max_attempts=3" in out
    assert run_cli("show", "--file", str(p), "--json", "payments") == 0
    assert '"generation": 3' in capsys.readouterr().out
    with pytest.raises(CommandError, match="no module 'nope'"):
        run_cli("show", "--file", str(p), "nope")
    # A missing file is named as missing, not as a file without the module.
    with pytest.raises(CommandError, match=r"no genome file at \S*missing.yaml"):
        run_cli("show", "--file", str(tmp_path / "missing.yaml"), "payments")
    with pytest.raises(CommandError, match=r"no genome file at \S*missing.yaml"):
        run_cli("show", "--file", str(tmp_path / "missing.yaml"))  # the same without a module
    bad = tmp_path / "bad.yaml"
    bad.write_text("payments: {genes: {retry: {max_attempts: 0}}}\n")
    with pytest.raises(CommandError, match=r"bad.yaml:1: payments.genes.retry.max_attempts"):
        run_cli("show", "--file", str(bad))


def test_cli_diff(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    write_genome_file(a, {"payments": PAY})
    changed = Genome.from_dict(
        "payments", {"generation": 4, "genes": {"retry": {"max_attempts": 5}}}
    )
    write_genome_file(b, {"payments": changed, "search": Genome("search")})
    assert run_cli("diff", str(a), str(b), "--exit-code") == 1
    out = capsys.readouterr().out
    assert "~ module payments" in out
    assert "~ retry.max_attempts: 3 -> 5" in out
    assert "+ module search" in out
    assert run_cli("diff", str(a), str(a), "--exit-code") == 0
    assert "no differences" in capsys.readouterr().out
    with pytest.raises(CommandError, match="no such genome file"):
        run_cli("diff", str(a), str(tmp_path / "typo.yaml"))


def approve_proposal(out: str, db: Path, gfile: Path, by: str = "bob") -> None:
    """Approve the proposal that `rafael genome adopt` printed, as a second person."""
    from pytest_rafael.cli import main

    proposal_id = re.search(r"proposal (\w+):", out).group(1)  # type: ignore[union-attr]
    # Approvals are signed: each approver gets an SSH key the allowed-signers file lists.
    root = Path.cwd()
    key = root / f"{by}_ed25519"
    if not key.exists():
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
        pub = " ".join(Path(f"{key}.pub").read_text().split()[:2])
        with (root / "rafael.allowed_signers").open("a") as signers:
            signers.write(f'{by} namespaces="rafael" {pub}\n')
    argv = [
        "genome",
        "approve",
        proposal_id,
        "--by",
        by,
        "--key",
        str(key),
        "--store",
        str(db),
        "--genome",
        str(gfile),
    ]
    assert main(argv) == 1  # alice, the author, cannot record another's approval
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RAFAEL_ACTOR", by)
        assert main(argv) == 0


@pytest.fixture(autouse=True)
def _actor(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RAFAEL_ACTOR", "alice")
    monkeypatch.chdir(tmp_path)


def test_cli_adopt_from_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    gfile, db = tmp_path / "rafael.genome.yaml", tmp_path / "r.db"
    base = Genome.from_dict("payments", {"generation": 3, "genes": {}})
    write_genome_file(gfile, {"payments": base})
    with Store(db) as store:
        e = _trained_engine(base)
        save_engine_state(store, e.key, "payments", e.state())
    assert run_cli("adopt", "payments", "--file", str(gfile), "--store", str(db), "--dry-run") == 0
    assert load_genome_file(gfile)["payments"] == base
    assert run_cli("adopt", "payments", "--file", str(gfile), "--store", str(db)) == 0
    out = capsys.readouterr().out
    assert "+ retry: max_attempts=6" in out
    assert "pending" in out
    assert load_genome_file(gfile)["payments"] == base  # nothing written before approval
    approve_proposal(out, db, gfile)
    adopted = load_genome_file(gfile)["payments"]
    assert adopted.genes["retry"]["max_attempts"] == 6
    assert adopted.generation == 4
    assert base.id in adopted.lineage


def test_cli_adopt_refuses_without_evidence(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gfile, db = tmp_path / "g.yaml", tmp_path / "r.db"
    base = Genome("payments")
    with Store(db) as store:
        e = Engine("k", base, seed=0)
        e.observe(0, base, _measure(0.5))
        e.observe(1, PAY, _measure(0.6))
        save_engine_state(store, "k", "payments", e.state())
    with pytest.raises(CommandError) as info:
        run_cli("adopt", "payments", "--file", str(gfile), "--store", str(db))
    assert info.value.exit_code == 1
    assert "earned adoption" in str(info.value)
    capsys.readouterr()
    assert run_cli("adopt", "payments", "--file", str(gfile), "--store", str(db), "--force") == 0
    approve_proposal(capsys.readouterr().out, db, gfile)
    assert load_genome_file(gfile)["payments"].genes == PAY.genes
    with pytest.raises(CommandError, match="no rafael store"):
        run_cli("adopt", "payments", "--file", str(gfile), "--store", str(tmp_path / "x.db"))


def test_cli_adopt_from_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src, dst = tmp_path / "src.yaml", tmp_path / "dst.yaml"
    write_genome_file(src, {"payments": PAY})
    assert run_cli("adopt", "payments", "--file", str(dst), "--from", str(src)) == 0
    assert not dst.exists()  # a medium-impact change waits for an approver
    approve_proposal(capsys.readouterr().out, tmp_path / ".rafael" / "rafael.db", dst)
    assert load_genome_file(dst)["payments"].genes == PAY.genes


def test_cli_usage_error_exits_2() -> None:
    with pytest.raises(SystemExit) as info:
        run_cli("adopt")
    assert info.value.code == 2


def test_idempotent_is_shown_diffed_and_adopted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def timeout_genome(idempotent: bool) -> Genome:
        return Genome.from_dict(
            "sessions",
            {"generation": 1, "genes": {"timeout": {"seconds": 2.0}}, "idempotent": idempotent},
        )

    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    write_genome_file(a, {"sessions": timeout_genome(False)})
    write_genome_file(b, {"sessions": timeout_genome(True)})
    assert run_cli("diff", str(a), str(b), "--exit-code") == 1
    assert "~ idempotent: false -> true" in capsys.readouterr().out
    assert run_cli("show", "--file", str(b)) == 0
    assert "  idempotent: true" in capsys.readouterr().out
    dst = tmp_path / "dst.yaml"
    assert run_cli("adopt", "sessions", "--file", str(dst), "--from", str(b)) == 0
    out = capsys.readouterr().out
    assert "~ idempotent: not declared -> true" in out
    # Declaring a module idempotent widens what a retry may re-send: high impact, two
    # approvers.
    assert "high" in out
    approve_proposal(out, tmp_path / ".rafael" / "rafael.db", dst)
    assert not dst.exists()
    approve_proposal(out, tmp_path / ".rafael" / "rafael.db", dst, by="carol")
    assert load_genome_file(dst)["sessions"].idempotent is True
