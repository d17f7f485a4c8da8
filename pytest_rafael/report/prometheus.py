"""``metrics.prom``: the run in Prometheus text exposition format (version 0.0.4), for a
node-exporter textfile collector or a Pushgateway.

Series are per (module, scenario), not per test id: test ids are unbounded label values
and would blow up a TSDB's cardinality.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pytest_rafael.report.model import (
    best_fitness,
    done,
    iterations,
    num,
    shipped_success,
    test_key,
)


def escape_label(value: str) -> str:
    """Label value escaping of the text format: backslash, double quote, newline."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def escape_help(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n")


def _fmt(value: float) -> str:
    return repr(float(value)) if value == value else "NaN"


def _labels(labels: Mapping[str, str]) -> str:
    return (
        "{" + ",".join(f'{k}="{escape_label(v)}"' for k, v in labels.items()) + "}"
        if labels
        else ""
    )


class _Writer:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(
        self, name: str, help_text: str, samples: list[tuple[Mapping[str, str], float]]
    ) -> None:
        if not samples:
            return
        self.lines.append(f"# HELP {name} {escape_help(help_text)}")
        self.lines.append(f"# TYPE {name} gauge")
        self.lines.extend(f"{name}{_labels(labels)} {_fmt(value)}" for labels, value in samples)


_Samples = list[tuple[Mapping[str, str], float]]


def render_metrics(results: Mapping[str, Any]) -> str:
    w = _Writer()
    _pair_families(w, results)
    _run_families(w, results)
    _audit_families(w, results)
    return "\n".join(w.lines) + "\n"


# The per-(module, scenario) families, in output order: name, help text.
_PAIR_FAMILIES = (
    (
        "rafael_fitness",
        "Mean fitness (0..1) of the shipped genome of the tests of this module under this "
        "scenario in the last run: what the gate judges",
    ),
    ("rafael_baseline_fitness", "Same as rafael_fitness (kept for dashboards that read this name)"),
    ("rafael_shipped_samples", "Measurements of the shipped genome behind rafael_fitness"),
    (
        "rafael_candidate_fitness",
        "Mean fitness of the best candidates that beat the shipped genome (not adopted)",
    ),
    (
        "rafael_shipped_success_rate",
        "Share of the shipped genome's measurements that passed: the headline success rate",
    ),
    (
        "rafael_success_rate",
        "Share of all iterations, candidates' included, that passed (skipped ones excluded)",
    ),
    ("rafael_iterations", "Iterations run in the last run"),
    ("rafael_failed_iterations", "Iterations that failed or errored in the last run"),
    ("rafael_tests", "Test and scenario pairs in the last run"),
)


def _pair_values(members: list[Mapping[str, Any]]) -> dict[str, float]:
    """One group's value of each family (a family without a value is left out)."""
    bests = [v for v in (best_fitness(t) for t in members) if v is not None]
    bases = [v for v in (num(t.get("baseline_fitness")) for t in members) if v is not None]
    ran = [i for t in members for i in done(t)]
    shipped = [c for c in (shipped_success(t) for t in members) if c is not None]
    values = {
        "rafael_shipped_samples": float(sum(num(t.get("baseline_n")) or 0.0 for t in members)),
        "rafael_iterations": float(sum(len(iterations(t)) for t in members)),
        "rafael_failed_iterations": float(
            sum(i.get("outcome") in ("failed", "error") for i in ran)
        ),
        "rafael_tests": float(len(members)),
    }
    if bests:
        values["rafael_candidate_fitness"] = sum(bests) / len(bests)
    if bases:
        values["rafael_fitness"] = values["rafael_baseline_fitness"] = sum(bases) / len(bases)
    if ran:
        values["rafael_success_rate"] = sum(i.get("outcome") == "passed" for i in ran) / len(ran)
    if shipped:
        passed = sum(c[0] for c in shipped)
        values["rafael_shipped_success_rate"] = passed / sum(c[1] for c in shipped)
    return values


def _pair_families(w: _Writer, results: Mapping[str, Any]) -> None:
    """The per-(module, scenario) series."""
    groups: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for test in results.get("tests") or []:
        module = str(test.get("module") or "")
        groups.setdefault((module, test_key(test)[1]), []).append(test)
    series: dict[str, _Samples] = {name: [] for name, _ in _PAIR_FAMILIES}
    for (module, scenario), members in sorted(groups.items()):
        labels = {"module": module, "scenario": scenario}
        for name, value in _pair_values(members).items():
            series[name].append((labels, value))
    for name, help_text in _PAIR_FAMILIES:
        w.family(name, help_text, series[name])


_SCORES = (
    (
        "rafael_resilience_score",
        "current_score",
        "Resilience score of what ships after the last run",
    ),
    (
        "rafael_baseline_score",
        "baseline_score",
        "Resilience score of what shipped when the last run started",
    ),
    ("rafael_improvement_percent", "improvement_pct", "Improvement of the shipped score, percent"),
    (
        "rafael_potential_score",
        "potential_score",
        "Score the best candidates would reach if adopted (not what ships)",
    ),
)


def _run_families(w: _Writer, results: Mapping[str, Any]) -> None:
    """The run's scores, gate and findings."""
    delta = results.get("delta") or {}
    gate = results.get("gate") or {}
    for name, key, help_text in _SCORES:
        value = num(delta.get(key))
        w.family(name, help_text, [({}, value)] if value is not None else [])
    gate_set = num(gate.get("min_fitness")) is not None or any(
        num(t.get("min_fitness")) is not None for t in results.get("tests") or []
    )
    w.family(
        "rafael_gate_set",
        "1 when a fitness threshold applied to some test, else 0",
        [({}, 1.0 if gate_set else 0.0)],
    )
    w.family(
        "rafael_gate_passed",
        "1 when the gate passed (or no gate was set, see rafael_gate_set), else 0",
        [({}, 1.0 if gate.get("passed", True) else 0.0)],
    )
    w.family(
        "rafael_vulnerabilities",
        "Vulnerabilities found in the last run",
        [({}, float(len(delta.get("vulnerabilities") or [])))],
    )
    w.family(
        "rafael_threats_mitigated",
        "Threats mitigated in the last run",
        [({}, float(len(delta.get("threats_mitigated") or [])))],
    )


def _audit_families(w: _Writer, results: Mapping[str, Any]) -> None:
    audit = (results.get("guardian") or {}).get("audit")
    if not isinstance(audit, Mapping):
        return
    w.family(
        "rafael_audit_chain_verified",
        "1 when the audit chain verified, else 0",
        [({}, 1.0 if audit.get("verified") else 0.0)],
    )
    entries = num(audit.get("entries"))
    w.family(
        "rafael_audit_entries",
        "Entries in the audit chain",
        [({}, entries)] if entries is not None else [],
    )
