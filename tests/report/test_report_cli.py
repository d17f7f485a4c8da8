"""`rafael report` regenerates the report from the store, without running tests."""

from __future__ import annotations

import argparse
import json
import re
import sqlite3
from pathlib import Path

import pytest
from report_runs import make_run

import pytest_rafael.cli as rafael_cli
from pytest_rafael.common.results_text import results_json_text
from pytest_rafael.report import cli as report_cli
from pytest_rafael.report import history_from_store
from pytest_rafael.report.history import load_run
from pytest_rafael.store.core import Store


@pytest.fixture
def only_report(monkeypatch: pytest.MonkeyPatch) -> None:
    # The real dispatcher, with only this group: other groups' modules belong to other
    # parts and must not make this test depend on them.
    monkeypatch.setattr(rafael_cli, "COMMANDS", {"report": rafael_cli.COMMANDS["report"]})


def _store(path: Path | str) -> None:
    older = make_run(run_id="run-0001", started_at="2026-11-20T10:00:00+00:00")
    older["tests"][0]["best_fitness"] = 0.45
    older["delta"]["current_score"] = 0.5
    with Store(path) as store:
        store.save_run(older, run_group="nightly")
        store.save_run(
            make_run(run_id="run-0002", started_at="2026-11-22T18:00:00+00:00"),
            run_group="nightly",
        )


@pytest.mark.backends
@pytest.mark.usefixtures("only_report")
def test_a_run_group_merges_its_shards_into_one_report_and_gate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], store_target: Path | str
) -> None:
    shard_a = make_run(run_id="run-0002", started_at="2026-11-23T09:00:00+00:00")
    shard_a["gate"] = {"min_fitness": 0.7, "passed": True, "failures": []}
    shard_b = make_run(run_id="run-0003", started_at="2026-11-23T10:00:00+00:00")
    for t in shard_b["tests"]:
        t["nodeid"] = t["nodeid"].replace("tests/", "tests/shard_b/")
    shard_b["gate"] = {"min_fitness": 0.8, "passed": False, "failures": ["refund: 0.4 < 0.8"]}
    with Store(store_target) as store:
        store.save_run(make_run(run_id="run-0001", started_at="2026-11-20T10:00:00+00:00"))
        store.save_run(shard_a, run_group="ci-77")
        store.save_run(shard_b, run_group="ci-77")
    out = tmp_path / "out"
    argv = ["report", "--store", str(store_target), "--out", str(out), "--run-group", "ci-77"]
    assert rafael_cli.main(argv) == 1  # one shard's gate failed: the group's fails
    printed = capsys.readouterr().out
    tests = len(shard_a["tests"]) + len(shard_b["tests"])
    assert f"run group ci-77 (2 shards, {tests} tests): gate FAILED" in printed
    assert "run-0003: refund: 0.4 < 0.8" in printed
    doc = json.loads((out / "results.json").read_text())
    assert doc["run_group"] == "ci-77"
    assert [s["run_id"] for s in doc["shards"]] == ["run-0002", "run-0003"]
    assert {(t["nodeid"], t["scenario"]) for t in doc["tests"]} == {
        (t["nodeid"], t["scenario"]) for t in shard_a["tests"] + shard_b["tests"]
    }
    assert doc["gate"]["passed"] is False
    # The run before the group is its history.
    assert "Resilience score across 2 runs" in (out / "index.html").read_text()
    argv[-1] = "nope"
    assert rafael_cli.main(argv) == 1
    assert "no runs in run group 'nope'" in capsys.readouterr().err


@pytest.mark.backends
@pytest.mark.usefixtures("only_report")
def test_regenerates_latest_run_with_history(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], store_target: Path | str
) -> None:
    db, out = store_target, tmp_path / "out"
    _store(db)
    assert rafael_cli.main(["report", "--store", str(db), "--out", str(out)]) == 0
    assert "run-0002" in capsys.readouterr().out
    page = (out / "index.html").read_text()
    assert "run-0002" in page
    assert "Resilience score across 2 runs" in page
    # Earlier runs come from the store's summaries: their numbers reach the history.
    assert re.search(
        r"<th class=\"mono\">payments</th><td class=\"n\">0\.450</td>"
        r"<td class=\"n\">0\.900</td>",
        page,
    )
    results = json.loads((out / "results.json").read_text())
    with Store(db) as store:
        assert results == store.runs()[-1]
    assert (out / "summary.md").is_file()
    assert (out / "metrics.prom").is_file()


@pytest.mark.backends
@pytest.mark.usefixtures("only_report")
def test_run_option_picks_an_older_run(tmp_path: Path, store_target: Path | str) -> None:
    db, out = store_target, tmp_path / "out"
    _store(db)
    assert (
        rafael_cli.main(["report", "--store", str(db), "--out", str(out), "--run", "run-0001"]) == 0
    )
    page = (out / "index.html").read_text()
    assert "run-0001" in page
    assert "first run in the store" in page


@pytest.mark.usefixtures("only_report")
@pytest.mark.parametrize(
    ("setup", "argv_extra", "code", "message"),
    [
        ("none", [], 2, "no rafael store here"),
        ("empty", [], 1, "the store has no runs yet"),
        ("full", ["--run", "nope"], 2, "no run with id 'nope' (2 runs stored)"),
    ],
)
def test_errors_are_one_line(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    setup: str,
    argv_extra: list[str],
    code: int,
    message: str,
) -> None:
    db = tmp_path / "r.db"
    if setup == "empty":
        Store(db).close()
    elif setup == "full":
        _store(db)
    argv = ["report", "--store", str(db), "--out", str(tmp_path / "out"), *argv_extra]
    assert rafael_cli.main(argv) == code
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists()
    if setup == "none":
        assert not db.exists()  # a typo must not leave an empty store behind


def test_register_adds_arguments_to_the_group() -> None:
    group = argparse.ArgumentParser(prog="rafael report")
    sub = group.add_subparsers()
    report_cli.register(sub, group)
    args = group.parse_args(["--store", "x.db", "--out", "o"])
    assert str(args.store) == "x.db"  # a file or a postgresql:// URL
    assert args.out == Path("o")
    assert args.run is None
    assert args.func is report_cli.run


def test_history_loads_without_sqlite_json1(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    _store(db)

    class NoJson1:
        def __init__(self, conn: sqlite3.Connection) -> None:
            self.conn = conn

        def execute(self, sql: str, *args: object) -> sqlite3.Cursor:
            if "json_extract" in sql:
                raise sqlite3.OperationalError("no such function: json_extract")
            return self.conn.execute(sql, *args)

    with Store(db) as store:
        full = load_run(store, None)
        real = store.conn
        store.conn = NoJson1(real)  # type: ignore[assignment]
        try:
            fallback = load_run(store, None)
        finally:
            store.conn = real
    assert fallback == full
    assert full[1][0]["delta"]["current_score"] == 0.5
    assert full[2] == 2


def test_history_from_store_for_the_plugin(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    _store(db)
    with Store(db) as store:
        before_saving = history_from_store(store)  # the current run is not stored yet
        after_saving = history_from_store(store, before="run-0002")
    assert [r["run_id"] for r in before_saving] == ["run-0001", "run-0002"]
    assert [r["run_id"] for r in after_saving] == ["run-0001"]
    tests = {t["nodeid"]: t for t in after_saving[0]["tests"]}
    assert tests["tests/test_pay.py::test_charge"]["best_fitness"] == 0.45


def test_an_earlier_run_scores_the_same_in_the_history_as_in_its_own_report(
    tmp_path: Path,
) -> None:
    # A pair no candidate beat counts with its shipped score, in the store's summary of
    # the run as in the run's own document (the summary has no baseline_n to ask for).
    from pytest_rafael.report.history_chart import _group_scores

    run = make_run(run_id="run-0001", started_at="2026-11-20T10:00:00+00:00")
    for t in run["tests"]:
        t["best_fitness"] = None
    with Store(tmp_path / "r.db") as store:
        store.save_run(run)
        (summary,) = history_from_store(store)
    for field in ("scenario", "module"):
        assert _group_scores(summary, field) == _group_scores(run, field)
        assert _group_scores(run, field)


def test_history_reads_deltas_of_stores_made_before_run_deltas(tmp_path: Path) -> None:
    """New runs keep their delta in run_deltas (read without parsing the documents); a
    run stored before that table existed still gets its delta from its document."""
    db = tmp_path / "r.db"
    _store(db)
    with Store(db) as store:
        stored = dict(store.conn.execute("SELECT run_id, delta_json FROM run_deltas"))
        assert json.loads(stored["run-0001"])["current_score"] == 0.5
        with store.transaction() as conn:
            conn.execute("DELETE FROM run_deltas WHERE run_id = 'run-0001'")
        history = history_from_store(store)
    assert [r["delta"]["current_score"] for r in history] == [
        0.5,
        make_run(run_id="x", started_at="2026-11-22T18:00:00+00:00")["delta"]["current_score"],
    ]


def test_results_json_is_the_stored_document_written_back_in_either_stored_form(
    tmp_path: Path,
) -> None:
    """The store keeps results.json's own text, which the command writes back unencoded;
    a store written before that (compact text) gives the same file."""
    run = make_run(run_id="run-0001", started_at="2026-11-20T10:00:00+00:00")
    expected = results_json_text(run)
    new, old = tmp_path / "new.db", tmp_path / "old.db"
    for db in (new, old):
        with Store(db) as store:
            store.save_run(run)
    with Store(new) as store:
        (stored,) = store.conn.execute("SELECT results_json FROM runs").fetchone()
    assert stored == expected
    with Store(old) as store:
        store.conn.execute("UPDATE runs SET results_json = ?", (json.dumps(run, default=str),))
    for db in (new, old):
        out = tmp_path / f"out-{db.stem}"
        assert rafael_cli.main(["report", "--store", str(db), "--out", str(out)]) == 0
        assert (out / "results.json").read_text() == expected
