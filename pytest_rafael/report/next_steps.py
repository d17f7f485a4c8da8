"""What a reviewer does after a run: the commands that review each proposal, and a short
"what to do next" list (failing pairs with their proposals, scenarios never exercised).

Pure functions of the results dict, shared by the HTML report and summary.md.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pytest_rafael.report.model import fmt_num, gate_failed_keys, iterations, test_key
from pytest_rafael.results import reference_failure

# Signed approvals: the reviewer names themselves and the SSH key that signs the decision.
APPROVE = "rafael genome approve {id} --by PRINCIPAL --key PATH"
REJECT = 'rafael genome reject {id} --by PRINCIPAL --key PATH --reason "..."'
SHOW = "rafael genome proposals {id}"
MAX_STEPS = 12
_SAFE_ID = re.compile(r"[A-Za-z0-9_.:-]+")
_SAFE_NODEID = re.compile(r"[A-Za-z0-9_./:\[\]-]+")
_SAFE_PATH = re.compile(r"[A-Za-z0-9_./-]+")


@dataclass(frozen=True)
class Step:
    """One thing to do: what and why (``text``), and the commands that do it."""

    text: str
    commands: tuple[str, ...] = ()


def review_commands(proposal_id: Any, genome: Any = None) -> tuple[str, ...]:
    """Show, approve and reject commands for a proposal, run at the project root;
    ``genome``: the ``--genome`` they need there (see results' ``guardian.genome_option``).
    Nothing for an odd id or path: a command a reviewer pastes must not carry text from
    elsewhere."""
    pid = str(proposal_id or "")
    option = "" if genome is None else f" --genome {genome}"
    if not _SAFE_ID.fullmatch(pid) or (
        genome is not None and not _SAFE_PATH.fullmatch(str(genome))
    ):
        return ()
    return SHOW.format(id=pid), APPROVE.format(id=pid) + option, REJECT.format(id=pid) + option


def genome_option(results: Mapping[str, Any]) -> Any:
    guardian = results.get("guardian")
    return guardian.get("genome_option") if isinstance(guardian, Mapping) else None


def _pending(results: Mapping[str, Any], key: str = "proposals") -> dict[str, Mapping[str, Any]]:
    """Pending proposals of this run (``proposals``) or filed by earlier runs
    (``earlier_pending``)."""
    guardian = results.get("guardian")
    proposals = guardian.get(key) if isinstance(guardian, Mapping) else None
    return {
        str(p.get("id")): p
        for p in proposals or []
        if isinstance(p, Mapping) and p.get("status") == "pending"
    }


def _failing(results: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """Pairs below the gate, with an iteration that did not pass, or whose test failed
    without faults (its reference run), even if every iteration under faults passed."""
    below = gate_failed_keys(results)
    out = []
    for test in results.get("tests") or []:
        if not isinstance(test, Mapping):
            continue
        outcomes = [str(i.get("outcome")) for i in iterations(test)]
        failing = any(o in ("failed", "error") for o in outcomes)
        if test_key(test) in below or failing or reference_failure(test.get("reference")):
            out.append(test)
    return out


def _unexercised(results: Mapping[str, Any]) -> list[str]:
    """Catalog scenarios no test ran, and scenarios that ran without a fault applied."""
    tests = [t for t in results.get("tests") or [] if isinstance(t, Mapping)]
    ran = {str(t.get("scenario")) for t in tests}
    catalog = [str(n) for n in results.get("scenario_catalog") or []]
    idle = sorted(
        s
        for s in ran
        if not any(i.get("faults") for t in tests if t.get("scenario") == s for i in iterations(t))
    )
    return [*(n for n in catalog if n not in ran), *idle]


def _setup_problem(test: Mapping[str, Any]) -> str | None:
    """Why a failing pair's verdict says nothing about resilience, when it does not: its
    test fails without faults too, or no iteration of it was measured (each errored
    before a fault could count). Hardening or more iterations would not help either."""
    why = reference_failure(test.get("reference"))
    if why is not None:
        return f"the test fails without faults ({why}); fix the test first"
    if not test.get("baseline_n"):
        errors = [str(i.get("error")) for i in iterations(test) if i.get("error")]
        if errors:
            return f"nothing was measured ({errors[0]}); fix the test's set-up first"
    return None


def next_steps(results: Mapping[str, Any]) -> list[Step]:
    """The short list, most urgent first: failing pairs (with their proposal, if any),
    other pending proposals (this run's, then those earlier runs filed), then scenarios
    never exercised."""
    steps: list[Step] = []
    pending, earlier = _pending(results), _pending(results, "earlier_pending")
    for test in _failing(results):
        nodeid, scenario = test_key(test)
        shipped, best = fmt_num(test.get("baseline_fitness")), fmt_num(test.get("best_fitness"))
        text = f"{nodeid} fails under {scenario} (shipped {shipped}, best candidate {best})"
        pid = test.get("proposal_id")
        setup = _setup_problem(test)
        if setup is not None:
            steps.append(Step(f"{nodeid} under {scenario}: {setup}"))
        elif pid:
            text += f": review proposal {pid}, which evolution found for it"
            pending.pop(str(pid), None)
            earlier.pop(str(pid), None)
            steps.append(Step(text, review_commands(pid, genome_option(results))))
        else:
            prefix = str(results.get("nodeid_prefix") or "")
            rerun = (
                f"pytest --rafael-chaos --rafael-scenario={scenario} "
                f"--rafael-iterations=10 {prefix}{nodeid}"
            )
            safe = _SAFE_NODEID.fullmatch(prefix + nodeid) and _SAFE_ID.fullmatch(scenario)
            steps.append(
                Step(
                    text + ": no candidate has beaten it by a margin that holds up yet; "
                    "harden the code or its genome, or run more iterations",
                    (rerun,) if safe else (),
                )
            )
    for group, filed in ((pending, ""), (earlier, ", filed by an earlier run")):
        for pid, proposal in group.items():
            module = proposal.get("module") or "?"
            impact = proposal.get("impact") or "?"
            steps.append(
                Step(
                    f"Review pending proposal {pid} (module {module}, impact {impact}{filed})",
                    review_commands(pid, genome_option(results)),
                )
            )
    unexercised = _unexercised(results)
    if unexercised:
        steps.append(
            Step(
                "Scenarios never exercised in this run: "
                + ", ".join(unexercised)
                + "; add them to a chaos marker (or check why no fault was applied)"
            )
        )
    return steps[:MAX_STEPS]
