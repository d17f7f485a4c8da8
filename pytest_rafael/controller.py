"""The end of a chaos run, on the controller only: iteration results become test results,
the resilience delta and the gate; proposals go to the guardian; the store, the reports
and the terminal get the outcome. One writer, also under pytest-xdist.
"""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from statistics import fmean
from typing import TYPE_CHECKING, Any

import pytest

from pytest_rafael.results import Delta, Gate, IterationResult, RunResult, TestResult

if TYPE_CHECKING:
    from pytest_rafael.plugin import RafaelSession


def group_iterations(
    iterations: Iterable[IterationResult],
) -> dict[tuple[str, str], list[IterationResult]]:
    """Iterations per (test, scenario), in first-seen order, each list by index."""
    groups: dict[tuple[str, str], list[IterationResult]] = {}
    for it in iterations:
        groups.setdefault((it.nodeid, it.scenario), []).append(it)
    for its in groups.values():
        its.sort(key=lambda i: i.index)
    return groups


def _baseline_iterations(its: Sequence[IterationResult]) -> list[IterationResult]:
    """Iterations that ran the shipped genome: all of them when the test evolves nothing."""
    if its[0].module is None:
        return list(its)
    first = its[0].genome
    return [i for i in its if i.genome == first] or [its[0]]


def build_tests(
    iterations: Iterable[IterationResult], verdicts: dict[str, dict[str, Any]]
) -> list[TestResult]:
    tests = []
    for (nodeid, scenario), its in group_iterations(iterations).items():
        scored = [i.fitness for i in its if i.fitness is not None]
        verdict = verdicts.get(f"{nodeid}::{scenario}")
        if verdict is not None:
            baseline, best = verdict["baseline_fitness"], verdict["best_fitness"]
            best_genome = verdict["best_genome"]
            baseline_genome = verdict["baseline_genome"]
        else:
            base = [i.fitness for i in _baseline_iterations(its) if i.fitness is not None]
            baseline = round(fmean(base), 4) if base else None
            best = round(max(scored), 4) if scored and its[0].module else baseline
            best_genome = None
            baseline_genome = its[0].genome
        tests.append(TestResult(
            nodeid=nodeid, scenario=scenario, severity=its[0].severity or "medium",
            module=its[0].module, iterations=tuple(its), baseline_fitness=baseline,
            best_fitness=best, best_genome=best_genome, baseline_genome=baseline_genome,
            min_fitness=its[0].min_fitness,
        ))
    return tests


def evaluate_gate(tests: Sequence[TestResult], session_min: float | None) -> Gate:
    """The shipped genome's fitness (the baseline) against each test's threshold."""
    failures = []
    for t in tests:
        threshold = t.min_fitness
        if threshold is None:
            continue
        score = t.baseline_fitness if t.baseline_fitness is not None else 0.0
        if score < threshold:
            hint = ""
            if t.proposal_id:
                hint = f" (candidate {t.best_fitness:.3f} proposed as {t.proposal_id})"
            failures.append(f"{t.nodeid} [{t.scenario}]: fitness {score:.3f} < "
                            f"{threshold:g}{hint}")
    return Gate(min_fitness=session_min, passed=not failures, failures=tuple(failures))


def compute_delta(tests: Sequence[TestResult]) -> Delta:
    """Baseline: the shipped genomes' mean fitness. Current: the mean fitness of what this
    run recommends shipping (the proposed candidate where there is one)."""
    if not tests:
        return Delta(0.0, 0.0, 0.0, (), ())
    baseline = fmean(t.baseline_fitness or 0.0 for t in tests)
    current = fmean(
        (t.best_fitness if t.proposal_id and t.best_fitness is not None else
         t.baseline_fitness) or 0.0
        for t in tests
    )
    vulnerable = [t for t in tests
                  if any(i.outcome != "passed" for i in _baseline_iterations(t.iterations)
                         if i.outcome != "skipped")]
    mitigated = sorted({t.scenario for t in vulnerable if t.proposal_id}
                       - {t.scenario for t in vulnerable if not t.proposal_id})
    vulnerabilities = tuple(
        f"{t.nodeid} [{t.scenario}]: " + next(
            (i.error or i.outcome for i in _baseline_iterations(t.iterations)
             if i.outcome not in ("passed", "skipped")), "failed")
        for t in vulnerable if not t.proposal_id
    )
    improvement = (current - baseline) / baseline * 100 if baseline > 0 else (
        100.0 if current > 0 else 0.0)
    return Delta(round(baseline, 4), round(current, 4), round(improvement, 2),
                 tuple(mitigated), vulnerabilities)


def _actor() -> str:
    from pytest_rafael.guardian.actor import resolve_actor

    return resolve_actor()


def finish_run(rs: RafaelSession, session: pytest.Session) -> RunResult:
    """Record the run (store, guardian, vault), write the reports, return the result.

    A store, audit chain or configuration that cannot be used does not lose the run: the
    reports are still written, the problem is one line in the summary, and the session
    fails (a tampered audit chain must stop a merge as surely as a low fitness).
    """
    s = rs.settings
    tests = build_tests(rs.iterations, rs.verdicts)
    finished = datetime.now(timezone.utc)
    run_id = rs.run_id
    actor = _actor()
    extra: dict[str, Any] = {}
    history: list[dict[str, Any]] = []

    def result(tests: Sequence[TestResult]) -> RunResult:
        gate = evaluate_gate(tests, s.min_fitness)
        if "error" in extra:
            gate = Gate(gate.min_fitness, False, (*gate.failures, extra["error"]))
        return RunResult(
            run_id=run_id, started_at=rs.started_at.isoformat(),
            finished_at=finished.isoformat(),
            duration_s=round((finished - rs.started_at).total_seconds(), 3), seed=s.seed,
            chaos=s.chaos, toxiproxy_url=s.toxiproxy_url or "embedded", actor=actor,
            tests=tuple(tests), delta=compute_delta(tests), gate=gate, extra=extra,
        )

    if rs.start_error is not None:
        extra["error"] = rs.start_error
    try:
        tests, history = _record(rs, session, tests, run_id, actor, extra, result)
    except _recording_errors() as exc:  # evaluated (imported) only when something raised
        extra["error"] = f"pytest-rafael: run not recorded in {s.store}: {exc}"
    run = result(tests)
    if "error" in extra:
        session.config.hook.pytest_rafael_run_finished(run=run)
    from pytest_rafael.report import write_reports

    rs.report_paths = write_reports(run.to_dict(), s.report_dir, history)
    return run


def _start_details(rs: RafaelSession) -> dict[str, Any]:
    return {"run_id": rs.run_id, "seed": rs.settings.seed,
            "started_at": rs.started_at.isoformat()}


def record_start(rs: RafaelSession, session: pytest.Session) -> None:
    """Audit ``run_started`` when the run starts, so that even a run killed half-way
    leaves a trace; a store that cannot take it is reported at the end of the run."""
    from pytest_rafael.guardian import Guardian
    from pytest_rafael.store import Store

    try:
        with Store(rs.settings.store) as store:
            Guardian.open(store, project_root=_project_root(session),
                          genome_file=rs.settings.genome_file, actor=_actor(),
                          ).record("run_started", details=_start_details(rs))
        rs.start_recorded = True
    except _recording_errors() as exc:  # evaluated (imported) only when something raised
        rs.start_error = f"pytest-rafael: run not recorded in {rs.settings.store}: {exc}"


def _project_root(session: pytest.Session) -> Path:
    """Where the guardian reads its policy: the same discovery as the ``rafael`` CLI
    (the nearest pyproject.toml / pytest.ini / tox.ini / setup.cfg upward from where
    pytest was started)."""
    from pytest_rafael.guardian.project import find_project_root

    return find_project_root(session.config.invocation_params.dir)


def _recording_errors() -> tuple[type[BaseException], ...]:
    """What a store, audit chain, config or vault that cannot be used raises."""
    from pytest_rafael.genome.file import GenomeFileError
    from pytest_rafael.guardian.audit import AuditChainError
    from pytest_rafael.guardian.config import GuardianConfigError
    from pytest_rafael.guardian.core import GuardianError
    from pytest_rafael.guardian.policy import PolicyError
    from pytest_rafael.store import StoreError
    from pytest_rafael.vault.loader import VaultError

    return (StoreError, AuditChainError, GuardianConfigError, GuardianError, PolicyError,
            GenomeFileError, VaultError, sqlite3.DatabaseError)


def _record(rs: RafaelSession, session: pytest.Session, tests: list[TestResult], run_id: str,
            actor: str, extra: dict[str, Any],
            result: Any) -> tuple[list[TestResult], list[dict[str, Any]]]:
    from pytest_rafael.genome.state import save_engine_state
    from pytest_rafael.guardian import Guardian
    from pytest_rafael.store import Store

    s = rs.settings
    with Store(s.store) as store:
        guardian = Guardian.open(
            store, project_root=_project_root(session), genome_file=s.genome_file,
            actor=actor,
            notify=lambda event: session.config.hook.pytest_rafael_proposal(event=event),
        )
        if not rs.start_recorded:
            guardian.record("run_started", details=_start_details(rs))
        for verdict in rs.verdicts.values():
            save_engine_state(store, verdict["key"], verdict["module"], verdict["engine_state"])
        events = []
        for t in tests:
            where = {"run_id": run_id, "nodeid": t.nodeid, "scenario": t.scenario}
            events.append({"event_type": "faults_injected", "module": t.module, "details": {
                **where, "iterations": len(t.iterations),
                "faults": sum(len(i.faults) for i in t.iterations)}})
            events.append({"event_type": "faults_reverted", "module": t.module, "details": {
                **where, "faults": sum(1 for i in t.iterations for f in i.faults
                                       if f.reverted_at_s is not None)}})
        guardian.record_many(events)  # one durable commit for the whole run
        tests = _propose(guardian, tests, rs.verdicts, run_id)
        extra["guardian"] = guardian.summary()
        audit = extra["guardian"]["audit"]
        if not audit["verified"]:
            extra["error"] = (f"pytest-rafael: the audit chain in {s.store} is broken at "
                              f"entry {audit['first_broken']}: {audit.get('reason')}; "
                              f"see 'rafael audit verify'")
        extra["vault"] = _recommendations(store, s.vault_dirs, tests)
        if "pytest_rafael.schedules" in sys.modules:
            from pytest_rafael.schedules import load_failures

            extra["hypothesis"] = load_failures(rs.failures_dir,
                                                since=rs.started_at.isoformat())
        run = result(tests)
        session.config.hook.pytest_rafael_run_finished(run=run)
        from pytest_rafael.report import history_from_store

        # Summaries, not whole stored documents: a long history stays cheap to chart.
        history = history_from_store(store, before=run_id)
        store.save_run(run.to_dict())
        finished_entry = guardian.record("run_finished", details={
            "run_id": run_id, "tests": len(tests), "gate_passed": run.gate.passed,
            "baseline_score": run.delta.baseline_score,
            "current_score": run.delta.current_score})
        # The audit head at the end of the run, for results.json and the report: kept off
        # the store, it shows a later truncation (`rafael audit verify --results FILE`).
        audit["head"] = {"id": finished_entry.id, "hash": finished_entry.hash}
    return tests, history


def _propose(guardian: Any, tests: list[TestResult], verdicts: dict[str, dict[str, Any]],
             run_id: str) -> list[TestResult]:
    """One proposal per module: the candidate with the largest proven gain."""
    from dataclasses import replace

    best_by_module: dict[str, dict[str, Any]] = {}
    for v in verdicts.values():
        if not v["propose"] or v["best_genome"] is None:
            continue
        gain = (v["best_fitness"] or 0) - (v["baseline_fitness"] or 0)
        current = best_by_module.get(v["module"])
        if current is None or gain > current["best_fitness"] - current["baseline_fitness"]:
            best_by_module[v["module"]] = v
    decided: dict[str, Any] = {}
    for module, v in best_by_module.items():
        evidence = {
            "run_id": run_id,
            "reason": v["reason"],
            "tests": [
                {"nodeid": t.nodeid, "scenario": t.scenario, "severity": t.severity,
                 "baseline_fitness": t.baseline_fitness, "best_fitness": t.best_fitness,
                 "success_rate": t.success_rate, "iterations": len(t.iterations)}
                for t in tests if t.module == module
            ],
        }
        decided[module] = guardian.propose(module, v["baseline_genome"], v["best_genome"],
                                           evidence)
    out = []
    for t in tests:
        proposal = decided.get(t.module or "")
        verdict = verdicts.get(f"{t.nodeid}::{t.scenario}")
        if proposal is not None and verdict is not None and verdict["propose"]:
            t = replace(t, proposal_id=proposal.id, adopted=proposal.status == "adopted")
        out.append(t)
    return out


def _recommendations(store: Any, vault_dirs: Sequence[Path],
                     tests: Sequence[TestResult]) -> dict[str, Any]:
    """Vault patterns for each vulnerable test, with declared and observed reliability."""
    from pytest_rafael.vault import Vault
    from pytest_rafael.vault.advice import advise
    from pytest_rafael.vault.evidence import observed_scores

    vault = Vault.load(vault_dirs).with_evidence(observed_scores(store))
    recommendations = []
    for entry in advise(vault, tests):
        patterns = []
        for rec in entry["recommendations"]:
            pattern = vault.get(rec["pattern_id"])
            observed = vault.observed(pattern.id)
            patterns.append({
                "id": pattern.id, "name": pattern.name, "category": pattern.category,
                "gene": rec["gene"], "reliability_score": pattern.reliability_score,
                "observed_score": None if observed is None else round(observed[0], 3),
                "why": rec["why"],
            })
        recommendations.append({"nodeid": entry["nodeid"], "scenario": entry["scenario"],
                                "error": entry["error"], "patterns": patterns})
    return {"recommendations": recommendations}


def write_terminal_summary(run: RunResult, tr: Any, paths: Any) -> None:
    tr.section("RAFAEL", sep="=", bold=True)
    width = max((len(f"{t.nodeid} [{t.scenario}]") for t in run.tests), default=20)
    for t in run.tests:
        name = f"{t.nodeid} [{t.scenario}]".ljust(width)
        base = "-" if t.baseline_fitness is None else f"{t.baseline_fitness:.2f}"
        best = "-" if t.best_fitness is None else f"{t.best_fitness:.2f}"
        fitness = base if t.module is None else f"{base} -> best {best}"
        if t.min_fitness is None:
            verdict = "no gate"
        elif (t.baseline_fitness or 0.0) >= t.min_fitness:
            verdict = f"PASS (>= {t.min_fitness:g})"
        else:
            verdict = f"FAIL (< {t.min_fitness:g})"
        if t.proposal_id:
            verdict += f", proposed {t.proposal_id}" + (" (adopted)" if t.adopted else "")
        tr.write_line(f"{name}  success {t.success_rate:4.0%}  fitness {fitness}  {verdict}")
    d = run.delta
    tr.write_line(f"resilience: baseline {d.baseline_score:.2f} -> current "
                  f"{d.current_score:.2f} ({d.improvement_pct:+.1f}%)")
    for failure in run.gate.failures:
        tr.write_line(f"GATE FAILED: {failure}", red=True)
    tr.write_line(f"run {run.run_id}, seed {run.seed} (reproduce with --rafael-seed {run.seed})")
    if paths is not None:
        tr.write_line(f"report: {paths.index_html}")
