"""``summary.md``: the short CI view (GitHub step summary, merge-request comment).

GitHub renders some HTML inside Markdown, so untrusted text is HTML-escaped and the
characters that would break a table cell or code span are neutralised.
"""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from pytest_rafael.common.path_coverage import pair_coverage
from pytest_rafael.report.lessons import Lesson, build_lessons
from pytest_rafael.report.model import (
    best_fitness,
    candidate_iterations,
    change_text,
    fmt_num,
    gate_failed_keys,
    iterations,
    measured,
    num,
    shipped_success_text,
    test_key,
)
from pytest_rafael.report.next_steps import next_steps

MAX_TEST_ROWS = 50
MAX_LESSONS = 10


def md(text: Any) -> str:
    """Text safe inside a Markdown table cell: HTML-escaped, pipes and newlines defused."""
    out = html.escape(str(text), quote=False)
    for ch in "\\`*_[]|":
        out = out.replace(ch, "\\" + ch)
    return " ".join(out.split())


def _code(text: Any) -> str:
    """Text for a code span, where escapes are shown literally: keep only plain characters."""
    return "".join(c for c in str(text) if c.isalnum() or c in "-_.:+") or "?"


def _guardian_line(guardian: Mapping[str, Any]) -> str:
    proposals = [p for p in guardian.get("proposals") or [] if isinstance(p, Mapping)]
    statuses = Counter(str(p.get("status", "?")) for p in proposals)
    text = f"**Guardian:** {len(proposals)} proposal{'' if len(proposals) == 1 else 's'}"
    if statuses:
        text += " (" + ", ".join(f"{n} {md(k)}" for k, n in statuses.most_common()) + ")"
    earlier = [p for p in guardian.get("earlier_pending") or [] if isinstance(p, Mapping)]
    if earlier:
        text += f"; {len(earlier)} filed by earlier runs still pending"
    audit = guardian.get("audit")
    if isinstance(audit, Mapping):
        if audit.get("verified"):
            text += f"; audit chain verified ({audit.get('entries', '?')} entries)"
        else:
            text += f"; ❌ audit chain BROKEN at entry {md(audit.get('first_broken') or '?')}"
    return text + "."


def render_summary(results: Mapping[str, Any], lessons: Sequence[Lesson] | None = None) -> str:
    gate = results.get("gate") or {}
    delta = results.get("delta") or {}
    tests = list(results.get("tests") or [])
    lessons = build_lessons(results) if lessons is None else lessons
    passed = bool(gate.get("passed", True))
    below = gate_failed_keys(results)
    gate_set = num(gate.get("min_fitness")) is not None or any(
        num(t.get("min_fitness")) is not None for t in tests
    )
    if results.get("status") == "interrupted":
        headline = (
            f"## ⚠️ pytest-rafael: run INTERRUPTED "
            f"({md(results.get('interrupted_by') or '?')}): partial results"
        )
    elif not passed:
        headline = "## ❌ pytest-rafael: resilience gate failed"
    elif gate_set:
        headline = "## ✅ pytest-rafael: resilience gate passed"
    else:
        headline = "## pytest-rafael: no gate set"
    # A test evolving several modules is one pair, shown once per module.
    pairs = {(t.get("nodeid"), t.get("scenario")) for t in tests}
    runs = {
        (t.get("nodeid"), t.get("scenario"), i.get("index")) for t in tests for i in iterations(t)
    }
    lines = [
        headline,
        "",
        f"Run `{_code(results.get('run_id', '?'))}` · seed `{_code(results.get('seed', '?'))}` · "
        f"chaos {'on' if results.get('chaos') else 'off'} · "
        f"{len(pairs)} test/scenario pairs · "
        f"{len(runs):,} iterations"
        + (
            f" · min fitness {fmt_num(gate.get('min_fitness'))}"
            if num(gate.get("min_fitness")) is not None
            else " · no fitness gate set"
        ),
        "",
    ]
    failures = [str(x) for x in gate.get("failures") or []]
    if failures:
        lines += ["**Why the gate failed:**", ""]
        lines += [f"- {md(line)}" for line in failures[:MAX_TEST_ROWS]]
        if len(failures) > MAX_TEST_ROWS:
            lines.append(f"- and {len(failures) - MAX_TEST_ROWS} more")
        lines.append("")
    lines += _scores_lines(delta) if measured(results) else [_NOT_MEASURED, ""]
    lines += _tests_lines(tests, below)
    guardian = results.get("guardian")
    if isinstance(guardian, Mapping):
        lines += [_guardian_line(guardian), ""]
    lines += _lessons_lines(lessons)
    lines += _next_steps_lines(results)
    return "\n".join(lines)


_NOT_MEASURED = (
    "**Not measured:** no chaos iteration of a shipped genome was scored, so there is no "
    "baseline or current score."
)


def _scores_lines(delta: Mapping[str, Any]) -> list[str]:
    base = delta.get("baseline_score")
    lines = [
        "| shipped: baseline | shipped: current | improvement | threats mitigated "
        "| passed, not exercised | vulnerabilities |",
        "|---:|---:|---:|---:|---:|---:|",
        f"| {fmt_num(delta.get('baseline_score'))} | {fmt_num(delta.get('current_score'))} | "
        f"{change_text(base, delta.get('current_score'), delta.get('improvement_pct'))} | "
        f"{len(delta.get('threats_mitigated') or [])} | "
        f"{len(delta.get('not_exercised') or [])} | "
        f"{len(delta.get('vulnerabilities') or [])} |",
        "",
    ]
    broken = delta.get("fails_without_faults") or []
    if broken:
        lines += [
            "**Fails without faults** (not counted as vulnerabilities: fix these tests "
            "first): " + "; ".join(md(str(x)) for x in broken),
            "",
        ]
    potential = num(delta.get("potential_score"))
    if potential is not None and potential > (num(delta.get("current_score")) or 0.0):
        change = change_text(base, potential, delta.get("potential_improvement_pct"))
        lines += [f"Candidates' potential, not adopted: {fmt_num(potential)} ({change}).", ""]
    return lines


def _tests_lines(tests: list[Mapping[str, Any]], below: set[tuple[str, str]]) -> list[str]:
    if not tests:
        return []
    # Worst first: the rows a reviewer must read come before the capped tail.
    order = sorted(
        tests,
        key=lambda t: (
            test_key(t) not in below,
            num(t.get("baseline_fitness")) if num(t.get("baseline_fitness")) is not None else -1.0,
        ),
    )
    lines = [
        "| test | scenario | iterations | shipped passed | shipped fitness (n) "
        "| never ran | candidate fitness | proposal |",
        "|---|---|---:|---:|---:|---|---:|---|",
    ]
    for t in order[:MAX_TEST_ROWS]:
        nodeid, scenario = test_key(t)
        flag = " ❌" if (nodeid, scenario) in below else ""
        lines.append(
            f"| {md(nodeid)}{flag} | {md(scenario)} | {len(iterations(t))} | "
            f"{shipped_success_text(t)} | "
            f"{fmt_num(t.get('baseline_fitness'))} ({t.get('baseline_n', '?')}) | "
            f"{_coverage_text(t)} | "
            f"{_candidate_text(t)} | "
            f"{md(t.get('proposal_id') or ('yes' if t.get('adopted') else 'no'))} |"
        )
    if len(order) > MAX_TEST_ROWS:
        lines.append(f"\n{len(order) - MAX_TEST_ROWS} more pairs in index.html.")
    lines.append("")
    return lines


def _coverage_text(test: Mapping[str, Any]) -> str:
    """What the shipped genome's measurements never exercised ("never ran: retry;
    never held: 'x'; broke: 'y'"), led by "⚠️ not exercised" for a pass that counts as
    none; "-" when nothing is missing."""
    coverage = pair_coverage(test)
    gaps = "; ".join(coverage.gaps)
    if test.get("not_exercised"):
        return f"⚠️ not exercised ({md(coverage.shortfall or '')})" + (
            f": {md(gaps)}" if gaps else ""
        )
    return md(gaps) if gaps else "-"


def _candidate_text(test: Mapping[str, Any]) -> str:
    """The best candidate's fitness where one beat the shipped genome; otherwise how the
    candidates did ("n/a" read as if none had run)."""
    best = best_fitness(test)
    if best is not None:
        return fmt_num(best)
    passed, ran = candidate_iterations(test)
    return f"none better ({passed} of {ran} passed)" if ran else "none ran"


def _lessons_lines(lessons: Sequence[Lesson]) -> list[str]:
    if not lessons:
        return []
    lines = ["**Lessons learned**", ""]
    lines += [f"- {md(lesson.text)}" for lesson in lessons[:MAX_LESSONS]]
    if len(lessons) > MAX_LESSONS:
        lines.append(f"- and {len(lessons) - MAX_LESSONS} more in index.html")
    lines.append("")
    return lines


def _next_steps_lines(results: Mapping[str, Any]) -> list[str]:
    steps = next_steps(results)
    if not steps:
        return []
    lines = ["**What to do next**", ""]
    for n, step in enumerate(steps, 1):
        lines.append(f"{n}. {md(step.text)}")
        # Commands are built from checked ids only, so a code span shows them verbatim.
        lines += [f"   - `{command}`" for command in step.commands]
    return [*lines, ""]
