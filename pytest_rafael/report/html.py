"""``index.html``: one self-contained file (inline CSS and SVG, no script, no URL).

Rendering is split in two: :func:`build_context` turns the results dict into plain view
objects (all numbers decided here, so tests can compare them with the dict), and a jinja2
template with autoescape on lays them out. Untrusted strings reach the template as plain
``str`` and are escaped there; only SVG built by :mod:`charts` (which escapes its own
text) is passed as ``Markup``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import jinja2

from pytest_rafael.report.history import MAX_HISTORY_RUNS
from pytest_rafael.report.history_chart import _history
from pytest_rafael.report.lessons import Lesson, build_lessons
from pytest_rafael.report.model import (
    change_text,
    fault_text,
    fmt_num,
    fmt_seconds,
    iterations,
    measured,
    num,
)
from pytest_rafael.report.next_steps import next_steps, review_commands
from pytest_rafael.report.sections import _matrix, _sections, fitness_class

MAX_LESSONS = 100

CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; script-src 'none'; "
    "object-src 'none'; base-uri 'none'; form-action 'none'"
)


def build_context(
    results: Mapping[str, Any],
    history: Sequence[Mapping[str, Any]],
    lessons: Sequence[Lesson] | None = None,
) -> dict[str, Any]:
    run_id = results.get("run_id")
    earlier = [r for r in history if isinstance(r, Mapping) and r.get("run_id") != run_id]
    runs = [*earlier, results][-MAX_HISTORY_RUNS:]
    lessons = build_lessons(results) if lessons is None else list(lessons)
    full, brief = _sections(results, runs, lessons)
    tests = list(results.get("tests") or [])
    all_its = [i for t in tests for i in iterations(t)]
    outcomes = Counter(str(i.get("outcome")) for i in all_its)
    gate = results.get("gate") or {}
    failures = [str(x) for x in gate.get("failures") or []]
    return {
        "csp": CSP,
        "run_id": str(run_id or "?"),
        "started_at": str(results.get("started_at") or "?"),
        "finished_at": str(results.get("finished_at") or "?"),
        "duration": fmt_seconds(results.get("duration_s")),
        "seed": str(results.get("seed", "?")),
        "chaos": bool(results.get("chaos")),
        "toxiproxy_url": str(results.get("toxiproxy_url") or ""),
        "actor": str(results.get("actor") or ""),
        "interrupted": str(results.get("interrupted_by") or "?")
        if results.get("status") == "interrupted"
        else None,
        "capped_metrics": [str(x) for x in results.get("capped_metrics") or []],
        "gate_passed": bool(gate.get("passed", True)),
        "gate_min": fmt_num(gate.get("min_fitness")),
        "gate_has_min": num(gate.get("min_fitness")) is not None,
        "gate_set": num(gate.get("min_fitness")) is not None
        or any(num(t.get("min_fitness")) is not None for t in tests),
        "gate_failures": failures[:50],
        "gate_failures_hidden": max(0, len(failures) - 50),
        "n_tests": len(tests),
        "n_iterations": len(all_its),
        "outcomes": outcomes.most_common(),
        "delta": _delta(results.get("delta") or {}),
        "measured": measured(results),
        "matrix": _matrix(results),
        "sections": full,
        "brief_sections": brief,
        "history": _history(runs),
        "lessons": lessons[:MAX_LESSONS],
        "lessons_hidden": max(0, len(lessons) - MAX_LESSONS),
        "vault": _vault(results.get("vault")),
        "guardian": _guardian(results.get("guardian")),
        "next_steps": next_steps(results),
        "hypothesis": _hypothesis(results),
        "has_hypothesis": "hypothesis" in results,
        "fitness_class": fitness_class,
    }


def _delta(delta: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "baseline": fmt_num(delta.get("baseline_score")),
        "current": fmt_num(delta.get("current_score")),
        "improvement": _change(delta, "current_score", "improvement_pct"),
        "improvement_value": _gain(delta, "current_score"),
        "potential": fmt_num(delta.get("potential_score")),
        "potential_value": num(delta.get("potential_score")),
        "potential_improvement": _change(delta, "potential_score", "potential_improvement_pct"),
        "mitigated": [str(x) for x in delta.get("threats_mitigated") or []],
        "vulnerabilities": [str(x) for x in delta.get("vulnerabilities") or []],
        "not_exercised": [str(x) for x in delta.get("not_exercised") or []],
        "fails_without_faults": [str(x) for x in delta.get("fails_without_faults") or []],
    }


def _hypothesis(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The failing fault schedules Hypothesis shrank, with the YAML to replay each."""
    return [
        {
            "nodeid": str(f.get("nodeid")),
            "schedule": [fault_text(x) for x in f.get("schedule") or [] if isinstance(x, dict)],
            "yaml": str(f.get("yaml") or ""),
        }
        for f in (results.get("hypothesis") or {}).get("failures") or []
    ]


def _s(value: Any) -> str:
    return "" if value is None else str(value)


def _vault(raw: Any) -> dict[str, Any] | None:
    """The optional vault section with every field present (missing ones empty)."""
    if not isinstance(raw, Mapping):
        return None
    recs = []
    for rec in raw.get("recommendations") or []:
        patterns = [
            {
                "id": _s(p.get("id")),
                "name": _s(p.get("name")),
                "category": _s(p.get("category")),
                "reliability_score": p.get("reliability_score"),
                "observed_score": p.get("observed_score"),
                "why": _s(p.get("why")),
            }
            for p in rec.get("patterns") or []
            if isinstance(p, Mapping)
        ]
        recs.append(
            {
                "nodeid": _s(rec.get("nodeid")),
                "scenario": _s(rec.get("scenario")),
                "patterns": patterns,
            }
        )
    return {"recommendations": recs}


def _guardian(raw: Any) -> dict[str, Any] | None:
    """The optional guardian section with every field present (missing ones empty)."""
    if not isinstance(raw, Mapping):
        return None
    audit = raw.get("audit")
    norm_audit = None
    if isinstance(audit, Mapping):
        norm_audit = {
            "entries": audit.get("entries", 0),
            "verified": bool(audit.get("verified")),
            "first_broken": _s(audit.get("first_broken")),
            "hmac": bool(audit.get("hmac")),
            "head": _head(audit.get("head")),
        }
    option = raw.get("genome_option")
    return {
        "audit": norm_audit,
        "proposals": _proposals(raw.get("proposals"), option),
        "earlier_pending": _proposals(raw.get("earlier_pending"), option),
    }


def _proposals(raw: Any, genome_option: Any) -> list[dict[str, Any]]:
    return [
        {
            "id": _s(p.get("id")),
            "module": _s(p.get("module")),
            "impact": _s(p.get("impact")),
            "status": _s(p.get("status")),
            "reasons": [_s(r) for r in p.get("reasons") or []],
            "commands": review_commands(p.get("id"), genome_option)
            if p.get("status") == "pending"
            else (),
            "approvals": [
                {"by": _s(a.get("by")), "role": _s(a.get("role")), "at": _s(a.get("at"))}
                for a in p.get("approvals") or []
                if isinstance(a, Mapping)
            ],
        }
        for p in raw or []
        if isinstance(p, Mapping)
    ]


def _head(raw: Any) -> dict[str, str] | None:
    """The audit head at the end of the run (entry id and hash), if recorded."""
    if not isinstance(raw, Mapping) or raw.get("id") is None:
        return None
    return {"id": _s(raw.get("id")), "hash": _s(raw.get("hash"))}


def _change(delta: Mapping[str, Any], score: str, pct: str) -> str:
    return change_text(delta.get("baseline_score"), delta.get(score), delta.get(pct))


def _gain(delta: Mapping[str, Any], score: str) -> float | None:
    """The score's change from the baseline: its sign colours the card."""
    before, after = num(delta.get("baseline_score")), num(delta.get(score))
    return None if before is None or after is None else after - before


def _bytecode_cache() -> jinja2.BytecodeCache | None:
    """Compiled templates kept between processes (Jinja's per-user, owner-only folder
    under the temp dir): compiling the page's template costs a `rafael report` process
    more than reading the store's history. None where that folder cannot be had."""
    try:
        return jinja2.FileSystemBytecodeCache()
    except (OSError, RuntimeError):
        return None


_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("pytest_rafael.report", "templates"),
    bytecode_cache=_bytecode_cache(),
    autoescape=True,  # every template, whatever its file name
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_ENV.filters["num"] = fmt_num


def render_html(
    results: Mapping[str, Any],
    history: Sequence[Mapping[str, Any]] = (),
    lessons: Sequence[Lesson] | None = None,
) -> str:
    """The page; ``lessons`` saves building them twice when the caller already has them."""
    context = build_context(results, history, lessons)
    return _ENV.get_template("index.html.j2").render(**context)
