"""The end of a chaos run, on the controller only: iteration results become test results,
the resilience delta and the gate; proposals go to the guardian; the store, the reports
and the terminal get the outcome. One writer, also under pytest-xdist.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_rafael.results import (
    Gate,
    RunResult,
    TestResult,
)
from pytest_rafael.scenario import pending as schedule_pending

if TYPE_CHECKING:
    from pytest_rafael.guardian import Guardian
    from pytest_rafael.plugin.session import RafaelSession
from pytest_rafael.plugin import marker
from pytest_rafael.plugin.gate import build_tests, compute_delta, evaluate_gate
from pytest_rafael.plugin.proposals import _propose, _recommendations


def _nodeid_prefix(config: pytest.Config) -> str:
    """The rootdir as seen from the invocation directory ("" when they are the same or
    the rootdir is not below it)."""
    try:
        rel = config.rootpath.relative_to(config.invocation_params.dir)
    except ValueError:
        return ""
    return "" if str(rel) == "." else f"{rel.as_posix()}/"


def _actor() -> str:
    from pytest_rafael.guardian.actor import resolve_actor

    return resolve_actor()


@dataclass(frozen=True)
class RunHeader:
    """What a run's result holds besides its tests: fixed when the run ends."""

    run_id: str
    started_at: str
    finished_at: str
    duration_s: float
    seed: int
    chaos: bool
    toxiproxy_url: str
    actor: str
    min_fitness: float | None
    interrupted: str | None = None  # what cut the run short (a signal), if anything

    def result(self, tests: Sequence[TestResult], extra: Mapping[str, Any]) -> RunResult:
        """The typed verdict of the run: tests, delta and gate (which an ``error`` in
        ``extra`` -- a run that could not be recorded -- fails)."""
        gate = evaluate_gate(tests, self.min_fitness)
        if "error" in extra:
            gate = Gate(gate.min_fitness, False, (*gate.failures, extra["error"]))
        if self.interrupted is not None:
            gate = Gate(
                gate.min_fitness,
                False,
                (*gate.failures, f"run interrupted ({self.interrupted}): results are partial"),
            )
        return RunResult(
            run_id=self.run_id,
            started_at=self.started_at,
            finished_at=self.finished_at,
            duration_s=self.duration_s,
            seed=self.seed,
            chaos=self.chaos,
            toxiproxy_url=self.toxiproxy_url,
            actor=self.actor,
            tests=tuple(tests),
            delta=compute_delta(tests),
            gate=gate,
            extra=dict(extra),
        )


def finish_run(
    rs: RafaelSession, session: pytest.Session, interrupted: str | None = None
) -> RunResult:
    """Record the run (store, guardian, vault), write the reports, return the result.

    A store, audit chain or configuration that cannot be used does not lose the run: the
    reports are still written, the problem is one line in the summary, and the session
    fails (a tampered audit chain must stop a merge as surely as a low fitness).

    ``interrupted`` (what stopped the run: "SIGTERM", "SIGINT", ...) makes this a partial
    record: the faults the finished iterations injected and reverted, ``run_finished``
    with status "interrupted", and a report marked interrupted that replaces the last.
    ``pytest_rafael_run_finished`` fires exactly once, whatever goes wrong.
    """
    s = rs.settings
    tests = build_tests(rs.iterations, rs.verdicts, rs.references, rs.samples_needed())
    finished = datetime.now(timezone.utc)
    header = RunHeader(
        run_id=rs.run_id,
        started_at=rs.started_at.isoformat(),
        finished_at=finished.isoformat(),
        duration_s=round((finished - rs.started_at).total_seconds(), 3),
        seed=s.seed,
        chaos=s.chaos,
        toxiproxy_url=s.toxiproxy_url or "embedded",
        actor=_actor(),
        min_fitness=s.min_fitness,
        interrupted=interrupted,
    )
    extra = _run_extra(rs, session, interrupted)
    history: list[dict[str, Any]] = []
    try:
        tests, history = _record(rs, session, tests, header, extra)
    except _recording_errors() as exc:  # evaluated (imported) only when something raised
        extra["error"] = f"pytest-rafael: run not recorded in {_label(s.store)}: {exc}"
    run = header.result(tests, extra)
    # Once per run, recorded or not, with the final results (an audit chain found
    # broken while recording fails the gate of this very run).
    session.config.hook.pytest_rafael_run_finished(run=run)
    from pytest_rafael.report import write_reports

    try:
        rs.report_paths = write_reports(run.to_dict(), s.report_dir, history)
    except OSError as exc:  # recorded in the store already; the summary says why
        rs.report_error = (
            f"pytest-rafael: report not written to {s.report_dir}: {exc.strerror or exc}"
        )
    return run


def _run_extra(
    rs: RafaelSession, session: pytest.Session, interrupted: str | None
) -> dict[str, Any]:
    s = rs.settings
    # RunResult.extra, assembled as the run is recorded (guardian, vault, hypothesis).
    extra: dict[str, Any] = {}
    if s.run_group is not None:
        extra["run_group"] = s.run_group
    if rs.start_error is not None:
        extra["error"] = rs.start_error
    if interrupted is not None:
        extra["status"] = "interrupted"
        extra["interrupted_by"] = interrupted
    from pytest_rafael.plugin.metric_limits import cut_metrics

    capped = [
        line
        for i in rs.iterations
        for line in cut_metrics(i.nodeid, i.scenario, i.index, i.metrics)
    ]
    if capped:
        extra["capped_metrics"] = capped
    if rs.swept is not None and rs.swept.swept:
        extra["swept_proxies"] = list(rs.swept.swept)
    # Node ids are relative to the rootdir; the report's commands are pasted where pytest
    # was started, so they need the way from there to the rootdir.
    extra["nodeid_prefix"] = _nodeid_prefix(session.config)
    with contextlib.suppress(ValueError):  # a broken catalog was reported at collection
        # For the report's "what to do next": scenarios no test exercised. Those that
        # --rafael-scenario left out were not meant to run.
        chosen = rs.settings.select_scenarios
        extra["scenario_catalog"] = sorted(marker.in_selection(rs.catalog(), chosen))
    return extra


def _start_details(rs: RafaelSession) -> dict[str, Any]:
    details: dict[str, Any] = {
        "run_id": rs.run_id,
        "seed": rs.settings.seed,
        "started_at": rs.started_at.isoformat(),
    }
    if rs.swept is not None and (rs.swept.swept or rs.swept.errors):
        # Proxies of dead runs removed from the external server before this run.
        details["swept_proxies"] = list(rs.swept.swept)
        details["sweep_errors"] = list(rs.swept.errors)
    return details


def record_start(rs: RafaelSession, session: pytest.Session) -> None:
    """Audit ``run_started`` when the run starts, so that even a run killed half-way
    leaves a trace; a store that cannot take it is reported at the end of the run."""
    rs.start_error = _record_one(rs, session, "run_started", _start_details(rs))
    rs.start_recorded = rs.start_error is None


def _record_one(
    rs: RafaelSession, session: pytest.Session, event: str, details: dict[str, Any]
) -> str | None:
    """Append one audit entry in its own commit; the one-line problem when the store
    cannot take it."""
    from pytest_rafael.guardian import Guardian

    try:
        with rs.store() as store:
            Guardian.open(
                store,
                project_root=project_root(session),
                genome_file=rs.settings.genome_file,
                actor=_actor(),
            ).record(event, details=details)
    except _recording_errors() as exc:  # evaluated (imported) only when something raised
        return f"pytest-rafael: run not recorded in {_label(rs.settings.store)}: {exc}"
    return None


@dataclass(frozen=True)
class EmptyRun:
    """A chaos run in which no chaos-marked test ran: what the summary says of it."""

    lines: tuple[str, ...]
    gate_failed: bool


def finish_empty(rs: RafaelSession, session: pytest.Session) -> EmptyRun:
    """Close a chaos run that measured nothing. Its ``run_started`` (if recorded) gets a
    ``run_finished`` with status "nothing measured"; the last report and the history stay
    as they were. A gate set for the session fails: a pass would promise resilience that
    nothing measured (a wrong path or ``-k`` in CI would pass every merge)."""
    s = rs.settings
    lines = [
        "rafael: no chaos-marked test ran under --rafael-chaos: nothing was measured "
        "(the last report was left as it was)"
    ]
    gate_failed = s.min_fitness is not None
    if rs.start_recorded:
        details = {"run_id": rs.run_id, "status": "nothing measured", "tests": 0}
        problem = _record_one(
            rs, session, "run_finished", {**details, "gate_passed": not gate_failed}
        )
        if problem is not None:
            lines.append(problem)
    if gate_failed:
        source = s.sources.get("min_fitness", "--rafael-min-fitness")
        lines.append(
            f"GATE FAILED: {source} sets a gate of {s.min_fitness:g}, but no chaos-marked "
            "test ran: nothing to judge"
        )
    return EmptyRun(tuple(lines), gate_failed)


def _label(target: Path | str) -> str:
    from pytest_rafael.store.core import store_label

    return store_label(target)


def project_root(session: pytest.Session) -> Path:
    """Where the guardian reads its policy: the same discovery as the ``rafael`` CLI
    (the nearest pyproject.toml / pytest.ini / tox.ini / setup.cfg upward from where
    pytest was started)."""
    from pytest_rafael.guardian.project import find_project_root

    return find_project_root(session.config.invocation_params.dir)


def _recording_errors() -> tuple[type[BaseException], ...]:
    """What a store, audit chain, config or vault that cannot be used raises: every
    deliberate error is a :class:`RafaelError`; a database error can come from below."""
    from pytest_rafael.errors import RafaelError

    return (RafaelError, sqlite3.DatabaseError)


def _guardian_summary(guardian: Guardian) -> dict[str, Any]:
    summary = guardian.summary()
    genome_option = _genome_option(guardian.project_root, guardian.genome_file)
    if genome_option is not None:
        summary["genome_option"] = genome_option
    return summary


def _genome_option(root: Path, genome_file: Path) -> str | None:
    """The ``--genome`` a ``rafael genome approve`` at the project root needs to adopt into
    this run's genome file: None when the command would find that file by itself. After
    ``pytest examples`` from the repository root, the run's file comes from
    examples/pytest.ini, which the command at the root does not read."""
    from pytest_rafael import settings
    from pytest_rafael.errors import RafaelError
    from pytest_rafael.guardian.adoption import display_path

    try:
        found = Path(settings.command_value("genome_file", cwd=root))
    except RafaelError:
        found = None
    ours = display_path(genome_file, root)
    if found is not None and display_path(root / found, root) == ours:
        return None
    return ours


def _record(
    rs: RafaelSession,
    session: pytest.Session,
    tests: list[TestResult],
    header: RunHeader,
    extra: dict[str, Any],
) -> tuple[list[TestResult], list[dict[str, Any]]]:
    from pytest_rafael.genome.state import save_engine_state
    from pytest_rafael.guardian import Guardian

    s = rs.settings
    with rs.store() as store:
        guardian = Guardian.open(
            store,
            project_root=project_root(session),
            genome_file=s.genome_file,
            actor=header.actor,
            notify=lambda event: session.config.hook.pytest_rafael_proposal(event=event),
        )
        if not rs.start_recorded:
            guardian.record("run_started", details=_start_details(rs))
        for verdict in rs.verdicts.values():
            save_engine_state(
                store, verdict.key, verdict.module, verdict.engine_state, base=verdict.engine_base
            )
        events = _fault_events(tests, header.run_id)
        guardian.record_many(events)  # one durable commit for the whole run
        tests = _propose(guardian, tests, rs.verdicts, header.run_id)
        extra["guardian"] = _guardian_summary(guardian)
        audit = extra["guardian"]["audit"]
        if not audit["verified"]:
            extra["error"] = (
                f"pytest-rafael: the audit chain in {_label(s.store)} is broken at "
                f"entry {audit['first_broken']}: {audit.get('reason')}; "
                f"see 'rafael audit verify'"
            )
        extra["vault"] = _recommendations(store, s.vault_dirs, tests)
        if schedule_pending.has_failures(rs.failures_dir):
            from pytest_rafael.scenario.failures import load_failures

            extra["hypothesis"] = load_failures(rs.failures_dir, since=rs.started_at.isoformat())
        run = header.result(tests, extra)
        from pytest_rafael.report import history_from_store

        # Summaries, not whole stored documents: a long history stays cheap to chart.
        history = history_from_store(store, before=header.run_id)
        finished_entry = guardian.record("run_finished", details=_finished(run, header, extra))
        # The audit head at the end of the run, for results.json and the report: kept off
        # the store, it shows a later truncation (`rafael audit verify --results FILE`).
        audit["head"] = {"id": finished_entry.id, "hash": finished_entry.hash}
        if audit["verified"]:
            # The chain was verified just before; run_finished was appended onto its
            # checked tail. Counting it makes the figure `rafael audit verify` gives next.
            audit["entries"] += 1
        # Saved last, so the stored copy (`rafael report` regenerates from it) carries the
        # same count and head as results.json.
        store.save_run(header.result(tests, extra).to_dict(), run_group=s.run_group)
    return tests, history


def _finished(run: RunResult, header: RunHeader, extra: dict[str, Any]) -> dict[str, Any]:
    """The run_finished audit entry's details."""
    return {
        "run_id": header.run_id,
        "status": extra.get("status", "complete"),
        "tests": len(run.tests),
        "gate_passed": run.gate.passed,
        "baseline_score": run.delta.baseline_score,
        "current_score": run.delta.current_score,
    }


def _fault_events(tests: list[TestResult], run_id: str) -> list[dict[str, Any]]:
    """The audit entries of the faults each (test, scenario) pair injected and reverted."""
    events: list[dict[str, Any]] = []
    for t in tests:
        where = {"run_id": run_id, "nodeid": t.nodeid, "scenario": t.scenario}
        events.append(
            {
                "event_type": "faults_injected",
                "module": t.module,
                "details": {
                    **where,
                    "iterations": len(t.iterations),
                    "faults": sum(len(i.faults) for i in t.iterations),
                },
            }
        )
        events.append(
            {
                "event_type": "faults_reverted",
                "module": t.module,
                "details": {
                    **where,
                    "faults": sum(
                        1 for i in t.iterations for f in i.faults if f.reverted_at_s is not None
                    ),
                },
            }
        )
    return events


def write_terminal_summary(run: RunResult, tr: Any, paths: Any) -> None:
    from pytest_rafael.report.model import change_text

    tr.section("RAFAEL", sep="=", bold=True)
    width = max((len(t.label) for t in run.tests), default=20)
    for t in run.tests:
        tr.write_line(f"{t.label.ljust(width)}  {_test_line(run, t)}")
    d = run.delta
    if any(t.baseline_n for t in run.tests):
        tr.write_line(
            f"resilience of what ships: baseline {d.baseline_score:.2f} -> current "
            f"{d.current_score:.2f} "
            f"({change_text(d.baseline_score, d.current_score, d.improvement_pct, '')})"
        )
        if d.potential_score is not None and d.potential_score > d.current_score:
            change = change_text(
                d.baseline_score, d.potential_score, d.potential_improvement_pct, ""
            )
            tr.write_line(
                f"candidates' potential (not adopted): {d.potential_score:.2f} ({change})"
            )
    else:
        tr.write_line("resilience of what ships: not measured (no chaos iteration was scored)")
    # One verdict: the gate's failures when there are any (an interrupted or unrecorded
    # run fails even without a threshold), else the absence of a threshold.
    if run.gate.failures:
        for failure in run.gate.failures:
            tr.write_line(f"GATE FAILED: {failure}", red=True)
    elif run.gate.min_fitness is None and not any(t.min_fitness is not None for t in run.tests):
        tr.write_line("no gate set (--rafael-min-fitness): this run passes no verdict")
    tr.write_line(f"run {run.run_id}, seed {run.seed} (reproduce with --rafael-seed {run.seed})")
    if paths is not None:
        tr.write_line(f"report: {paths.index_html}")
    if run.extra.get("status") == "interrupted":
        tr.write_line(
            f"run INTERRUPTED ({run.extra.get('interrupted_by')}): the report "
            f"holds the results so far",
            red=True,
        )


def _test_line(run: RunResult, t: TestResult) -> str:
    """One pair: how the shipped genome did (success and fitness, each with its n), the
    best candidate apart, and the pair's verdict."""
    base = "-" if t.baseline_fitness is None else f"{t.baseline_fitness:.2f}"
    fitness = f"{base} (n={t.baseline_n})"
    if t.best_fitness is not None:
        label = "proposed" if t.proposal_id else "candidate"
        fitness += f", {label} {t.best_fitness:.2f} (n={t.best_n})"
    rate = t.shipped_success_rate
    success = (
        "shipped not measured"
        if rate is None
        else f"shipped passed {t.shipped_passed}/{t.baseline_n} ({rate:.0%})"
    )
    if t.not_exercised:  # a pass that ran none of its resilience paths proves nothing
        success += f", not exercised ({t.coverage.shortfall})"
    if t.fails_without_faults:  # no fault is to blame for its failures
        success += ", fails without faults"
    if t.min_fitness is None:
        verdict = "no threshold"  # the pair has none; the run's gate may still fail
    elif any(f.startswith(f"{t.nodeid} [{t.scenario}]:") for f in run.gate.failures):
        verdict = f"FAIL (gate {t.min_fitness:g})"
    else:
        verdict = f"PASS (>= {t.min_fitness:g})"
    if t.proposal_id:
        verdict += f", proposed {t.proposal_id}" + (" (adopted)" if t.adopted else "")
    return f"{success}  fitness {fitness}  {verdict}"
