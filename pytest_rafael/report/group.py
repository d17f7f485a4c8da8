"""One report for a run group: the shards of one CI run merged into one results document
(tests, delta, gate), which the report writer renders like any run.

Shards normally run disjoint tests. When two shards ran the same (test, scenario), the
one that finished last stands in the merged document (its engine had merged the other's
observations when it saved, see :mod:`pytest_rafael.genome.state`); both shards stay
listed under ``shards``. The group's gate passes only when every shard's gate passed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from statistics import fmean
from typing import Any

from pytest_rafael.results import improvement_pct, mitigated


def _delta(
    tests: Sequence[Mapping[str, Any]], vulnerabilities: list[str], broken: list[str]
) -> dict[str, Any]:
    if not tests:
        return {
            "baseline_score": 0.0,
            "current_score": 0.0,
            "improvement_pct": 0.0,
            "threats_mitigated": [],
            "vulnerabilities": [],
            "potential_score": None,
            "potential_improvement_pct": None,
            "not_exercised": [],
            "fails_without_faults": [],
        }
    # As for one run (plugin/gate.py): unmeasured pairs have no score, and a threat is
    # mitigated only where every test under it withstood it and met its own gate.
    tests = [t for t in tests if (t.get("baseline_n") or 0) > 0] or list(tests)
    baseline = fmean(t.get("baseline_fitness") or 0.0 for t in tests)
    current = fmean(
        (
            t.get("best_fitness")
            if t.get("adopted") and t.get("best_fitness") is not None
            else t.get("baseline_fitness")
        )
        or 0.0
        for t in tests
    )
    potential = fmean(
        max(t.get("best_fitness") or 0.0, t.get("baseline_fitness") or 0.0) for t in tests
    )
    scenarios = {str(t["scenario"]) for t in tests}
    weak = {
        str(t["scenario"])
        for t in tests
        if not mitigated(bool(t.get("withstood")), t.get("baseline_fitness"), t.get("min_fitness"))
    }
    return {
        "baseline_score": round(baseline, 4),
        "current_score": round(current, 4),
        "improvement_pct": improvement_pct(baseline, current),
        "threats_mitigated": sorted(scenarios - weak),
        "vulnerabilities": vulnerabilities,
        "fails_without_faults": broken,
        "potential_score": round(potential, 4),
        "potential_improvement_pct": improvement_pct(baseline, potential),
        "not_exercised": list(
            dict.fromkeys(
                f"{t['nodeid']} [{t['scenario']}]" for t in tests if t.get("not_exercised")
            )
        ),
    }


def _kept_lines(
    docs: Sequence[Mapping[str, Any]], prefixes: tuple[str, ...], key: str
) -> list[str]:
    """The shards' ``delta[key]`` lines about the pairs kept (from their latest runs)."""
    return list(
        dict.fromkeys(
            str(v)
            for d in docs
            for v in (d.get("delta") or {}).get(key) or []
            if str(v).startswith(prefixes)
        )
    )


def merge_group(group: str, docs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The merged results document of the shards ``docs`` (oldest first) of ``group``."""
    if not docs:
        raise ValueError(f"run group {group!r} has no runs")
    by_finish = sorted(docs, key=lambda d: str(d.get("finished_at", "")))
    tests: dict[tuple[str, str], Mapping[str, Any]] = {}
    for doc in by_finish:
        for t in doc.get("tests") or []:
            tests[(str(t["nodeid"]), str(t["scenario"]))] = t
    kept = list(tests.values())
    prefixes = tuple(f"{t['nodeid']} [{t['scenario']}]" for t in kept)
    failures: list[str] = []
    passed = True
    for d in by_finish:
        gate = d.get("gate") or {}
        passed = passed and bool(gate.get("passed")) and "error" not in d
        failures += [f"{d['run_id']}: {f}" for f in gate.get("failures") or []]
    last = by_finish[-1]
    started = min(str(d["started_at"]) for d in docs)
    finished = str(last["finished_at"])
    merged: dict[str, Any] = {
        **{k: v for k, v in last.items() if k not in ("tests", "delta", "gate", "error")},
        "run_id": f"group-{group}",
        "run_group": group,
        "started_at": started,
        "finished_at": finished,
        "duration_s": round(sum(float(d.get("duration_s") or 0.0) for d in docs), 3),
        "chaos": any(bool(d.get("chaos")) for d in docs),
        "tests": kept,
        "delta": _delta(
            kept,
            _kept_lines(by_finish, prefixes, "vulnerabilities"),
            _kept_lines(by_finish, prefixes, "fails_without_faults"),
        ),
        "gate": {
            "min_fitness": (last.get("gate") or {}).get("min_fitness"),
            "passed": passed,
            "failures": failures,
        },
        "shards": [
            {
                "run_id": d["run_id"],
                "actor": d.get("actor"),
                "started_at": d["started_at"],
                "finished_at": d["finished_at"],
                "tests": len(d.get("tests") or []),
                "gate_passed": bool((d.get("gate") or {}).get("passed")),
                **({"error": d["error"]} if "error" in d else {}),
            }
            for d in docs
        ],
    }
    errors = [f"{d['run_id']}: {d['error']}" for d in docs if "error" in d]
    if errors:
        merged["error"] = "; ".join(errors)
    return merged
