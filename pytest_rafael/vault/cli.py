"""``rafael vault search|show|recommend|validate``.

Pattern folders and the store come from the option table (:mod:`pytest_rafael.settings`),
as under pytest: ``--vault DIR`` (repeatable), else ``RAFAEL_VAULT_DIRS``, else the ini's
``rafael_vault_dirs``; observed evidence comes from the store (``--store``,
``RAFAEL_STORE``, ``rafael_store``, default ``.rafael/rafael.db``), read only when the
file exists, so browsing the vault never creates a store.
"""

from __future__ import annotations

import argparse
import json
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .loader import VaultError, load_dirs
from .models import BUILTIN_THREATS, CATEGORIES, Pattern
from .vault import Vault, VaultLookupError


def register(sub: Any, group: argparse.ArgumentParser) -> None:
    from pytest_rafael.cli import add_setting  # late: cli.py imports this module

    common = argparse.ArgumentParser(add_help=False)
    add_setting(common, "vault_dirs", "--vault", help="folder of extra pattern files (repeatable)")
    add_setting(
        common,
        "store",
        "--store",
        help="rafael store with observed evidence, read only when it exists",
    )
    common.add_argument("--json", action="store_true", help="machine-readable output")

    _add_search(sub, common)

    p = sub.add_parser(
        "show",
        parents=[common],
        help="show one pattern",
        description="Show a pattern with its code, and observed evidence.",
    )
    p.add_argument("id", help="pattern id (see 'rafael vault search')")
    p.set_defaults(func=_show)

    p = sub.add_parser(
        "recommend",
        parents=[common],
        help="patterns for a test failing under a scenario",
        description="Recommend patterns that mitigate a vulnerability.",
    )
    p.add_argument("scenario", help="the threat scenario the test failed under")
    p.add_argument("--error", help="the failure's error line")
    p.add_argument(
        "--genes",
        default="",
        help="genes the module's genome already has, comma separated (e.g. retry,timeout)",
    )
    p.add_argument("--tech", default="python", help="preferred technology (default python)")
    p.add_argument("--limit", type=int, default=3, metavar="N")
    p.set_defaults(func=_recommend)

    p = sub.add_parser(
        "validate",
        help="validate pattern files",
        description="Validate the pattern files of folders (exit 1 on errors).",
    )
    p.add_argument("dirs", nargs="+", type=Path, metavar="DIR")
    p.set_defaults(func=_validate)


def _add_search(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "search",
        parents=[common],
        help="search patterns",
        description="Search patterns, most relevant first, then most reliable.",
    )
    p.add_argument("text", nargs="*", help="words to search for (name, problem, tags, ...)")
    p.add_argument("--category", help=f"one of: {', '.join(CATEGORIES)}")
    p.add_argument("--tech", help="technology, e.g. python, asyncio, postgresql, node.js")
    p.add_argument("--threat", help="threat scenario, e.g. db_failure")
    p.add_argument(
        "--min-score", type=float, default=0.0, metavar="X", help="minimum reliability score (0..1)"
    )
    p.add_argument("--limit", type=int, default=20, metavar="N", help="at most N results")
    p.set_defaults(func=_search)


# -- helpers ----------------------------------------------------------------------------


def _error(message: str, exit_code: int = 2) -> Exception:
    from pytest_rafael.cli import CommandError  # late: cli.py imports this module

    return CommandError(message, exit_code)


def _vault(args: argparse.Namespace) -> Vault:
    from pytest_rafael.cli import resolve_settings

    resolve_settings(args)  # the option table's values for unset flags
    try:
        vault = Vault.load(list(args.vault_dirs))
    except VaultError as exc:
        raise _error(str(exc)) from None
    from pytest_rafael.store.core import Store, store_label

    target: Path | str = args.store  # a file, or a postgresql:// URL
    if args.store_given and isinstance(target, Path) and not target.exists():
        raise _error(f"--store {target}: no such file")
    if isinstance(target, str) or target.is_file():
        from .evidence import observed_scores

        try:
            with Store(target) as store:
                vault = vault.with_evidence(observed_scores(store))
        except Exception as exc:  # a broken store must not hide the vault
            raise _error(f"{store_label(target)}: cannot read evidence: {exc}") from None
    return vault


def _choice(value: str | None, valid: Sequence[str], what: str) -> None:
    if value is not None and value not in valid:
        raise _error(f"unknown {what} {value!r} (valid: {', '.join(valid)})")


def _score_text(vault: Vault, p: Pattern) -> str:
    obs = vault.observed(p.id)
    if obs is None:
        return f"{p.reliability_score:.2f}"
    observed, n = obs
    return (
        f"{vault.score(p):.2f} (declared {p.reliability_score:.2f}, observed {observed:.2f} n={n})"
    )


# -- commands ---------------------------------------------------------------------------


def _search(args: argparse.Namespace) -> int:
    vault = _vault(args)
    _choice(args.category, vault.categories, "category")
    _choice(args.threat, sorted(set(BUILTIN_THREATS) | set(vault.threats)), "threat")
    if args.tech is not None and not vault.search(tech=args.tech, limit=1):
        raise _error(f"unknown technology {args.tech!r} (known: {', '.join(vault.technologies)})")
    if not 0.0 <= args.min_score <= 1.0:
        raise _error(f"--min-score must be between 0 and 1, got {args.min_score}")
    if args.limit < 1:
        raise _error(f"--limit must be at least 1, got {args.limit}")
    found = vault.search(
        " ".join(args.text),
        category=args.category,
        tech=args.tech,
        threat=args.threat,
        min_score=args.min_score,
        limit=args.limit,
    )
    if args.json:
        print(
            json.dumps([dict(p.to_dict(), effective_score=vault.score(p)) for p in found], indent=2)
        )
    else:
        for p in found:
            print(f"{p.id:45} {vault.score(p):.2f}  {p.category:20} {p.name}")
    if not found:
        print("no pattern matches", file=__import__("sys").stderr)
        return 1
    return 0


def _show(args: argparse.Namespace) -> int:
    vault = _vault(args)
    try:
        p = vault.get(args.id)
    except VaultLookupError as exc:
        raise _error(str(exc)) from None
    if args.json:
        obs = vault.observed(p.id)
        print(
            json.dumps(
                dict(
                    p.to_dict(),
                    effective_score=vault.score(p),
                    observed={"score": obs[0], "n": obs[1]} if obs else None,
                ),
                indent=2,
            )
        )
        return 0

    def wrap(text: str) -> str:
        return textwrap.fill(
            " ".join(text.split()), 88, initial_indent="  ", subsequent_indent="  "
        )

    lines = [
        f"{p.name}  [{p.id}]",
        f"category:     {p.category}",
        f"technologies: {', '.join(p.technology_stack)}",
        f"threats:      {', '.join(p.threats) or '-'}",
        f"verification: {p.verification_status}",
        f"reliability:  {_score_text(vault, p)}",
        f"tags:         {', '.join(p.tags)}",
    ]
    if p.gene is not None:
        params = ", ".join(f"{k}={v}" for k, v in p.gene.parameters.items())
        lines.append(f"gene:         {p.gene.name}({params})")
    lines += [
        "",
        "problem:",
        wrap(p.problem),
        "",
        "solution:",
        wrap(p.solution),
        "",
        "configuration:",
    ]
    lines += [f"  {k}: {v}" for k, v in p.configuration.items()]
    lines += ["", f"code ({p.code_example.language}):", textwrap.indent(p.code_example.code, "  ")]
    lines += ["references:"]
    lines += [f"  - {r.title}" + (f" <{r.url}>" if r.url else "") for r in p.references]
    lines.append(f"source: {p.source}")
    print("\n".join(lines))
    return 0


def _recommend(args: argparse.Namespace) -> int:
    vault = _vault(args)
    _choice(args.scenario, sorted(set(BUILTIN_THREATS) | set(vault.threats)), "scenario")
    genes = [g.strip() for g in args.genes.split(",") if g.strip()]
    recs = vault.recommend(
        args.scenario, error=args.error, genome_genes=genes, limit=args.limit, tech=args.tech
    )
    if args.json:
        print(
            json.dumps(
                [{"pattern_id": r.pattern.id, "name": r.pattern.name, "why": r.why} for r in recs],
                indent=2,
            )
        )
    else:
        for r in recs:
            print(f"{r.pattern.id}: {r.pattern.name}\n    {r.why}")
    return 0 if recs else 1


def _validate(args: argparse.Namespace) -> int:
    try:
        patterns = load_dirs(args.dirs)
    except VaultError as exc:
        raise _error(str(exc), exit_code=1) from None
    print(f"{len(patterns)} pattern(s) valid")
    return 0
