"""``rafael genome show|diff|adopt`` (``proposals|approve|reject`` are the guardian's)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pytest_rafael.genome.evolution import Engine
from pytest_rafael.genome.file import GenomeFileError, load_genome_file
from pytest_rafael.genome.genome import Genome, declared
from pytest_rafael.genome.state import engine_states, load_engine_state


def _error(message: str, exit_code: int = 2) -> Exception:
    from pytest_rafael.cli import CommandError

    return CommandError(message, exit_code)


def _load(path: str | Path) -> dict[str, Genome]:
    try:
        return load_genome_file(path)
    except GenomeFileError as exc:
        raise _error(str(exc)) from None


def _show_text(g: Genome) -> list[str]:
    lines = [f"{g.module}  (generation {g.generation}, id {g.id})"]
    lines.append(f"  idempotent: {declared(g.idempotent)}")
    if not g.genes:
        lines.append("  no genes: calls run bare")
    for kind, gene in g.genes.items():
        params = ", ".join(f"{k}={json.dumps(v)}" for k, v in gene.to_dict().items())
        lines.append(f"  {kind}: {params}")
    if g.lineage:
        lines.append(f"  lineage: {' <- '.join(reversed(g.lineage))}")
    return lines


def cmd_show(args: argparse.Namespace) -> int:
    from pytest_rafael.cli import resolve_settings

    resolve_settings(args)  # the option table's values for unset flags
    genomes = _load(args.genome_file)
    if not Path(args.genome_file).exists():
        # Not "no genomes": the file itself is missing (often another folder's ini).
        raise _error(f"no genome file at {args.genome_file} (--genome names another)", 1)
    if args.module:
        if args.module not in genomes:
            known = ", ".join(sorted(genomes)) or "none"
            raise _error(f"{args.genome_file}: no module {args.module!r} (modules: {known})", 1)
        genomes = {args.module: genomes[args.module]}
    if args.json:
        print(
            json.dumps(
                {m: g.to_dict() | {"id": g.id} for m, g in genomes.items()},
                indent=2,
                sort_keys=True,
            )
        )
        return 0
    if not genomes:
        print(f"{args.genome_file}: no genomes (every @antifragile module runs bare)")
        return 0
    out: list[str] = []
    for module in sorted(genomes):
        out += _show_text(genomes[module])
    print("\n".join(out))
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    for path in (args.old, args.new):
        if not Path(path).is_file():
            raise _error(f"{path}: no such genome file")
    old, new = _load(args.old), _load(args.new)
    changed = False
    for module in sorted(set(old) | set(new)):
        if args.module and module != args.module:
            continue
        a, b = old.get(module), new.get(module)
        if a is None:
            assert b is not None
            lines = [f"+ module {module}"] + [f"  {line}" for line in Genome(module).diff(b)]
        elif b is None:
            lines = [f"- module {module}"]
        else:
            lines = [f"  {line}" for line in a.diff(b)]
            if lines:
                lines.insert(0, f"~ module {module}")
        if lines:
            changed = True
            print("\n".join(lines))
    if not changed:
        print("no differences")
    # Like diff(1): 1 when the genomes differ, so scripts can gate on it.
    return 1 if changed and args.exit_code else 0


def _best_from_store(
    store_path: Path, module: str, baseline: Genome, key: str | None, force: bool
) -> tuple[Genome, str]:
    from pytest_rafael.common.store_url import is_store_url
    from pytest_rafael.store.core import Store, StoreError

    if not is_store_url(store_path) and not Path(store_path).exists():
        raise _error(f"{store_path}: no rafael store (run pytest --rafael-chaos first)")
    try:
        store = Store(store_path)
    except StoreError as exc:
        raise _error(str(exc)) from None
    with store:
        keys = [k for k, _, _ in engine_states(store, module)]
        if key is not None:
            if key not in keys:
                raise _error(f"{store_path}: no evolution state for key {key!r} of {module!r}")
            keys = [key]
        if not keys:
            raise _error(f"{store_path}: no evolution state for module {module!r}", 1)
        verdicts: list[tuple[Any, str]] = []
        for k in keys:
            state = load_engine_state(store, k)
            engine = Engine(k, baseline, seed=0, state=state)
            verdicts.append((engine.verdict(), k))
    usable = [(v, k) for v, k in verdicts if v.best_genome is not None and (v.propose or force)]
    if not usable:
        reasons = "; ".join(f"{k}: {v.reason}" for v, k in verdicts)
        raise _error(
            f"no candidate of {module!r} earned adoption ({reasons});"
            " --force adopts the best measured one anyway",
            1,
        )
    verdict, k = max(usable, key=lambda vk: (vk[0].best_fitness or 0.0, vk[1]))
    best: Genome = verdict.best_genome
    return best, f"{k}: {verdict.reason}"


def cmd_adopt(args: argparse.Namespace) -> int:
    from pytest_rafael.cli import resolve_settings

    resolve_settings(args)  # the option table's values for unset flags
    genomes = _load(args.genome_file)
    current = genomes.get(args.module, Genome(args.module))
    if args.source:
        source = _load(args.source)
        if args.module not in source:
            raise _error(f"{args.source}: no module {args.module!r}")
        chosen = source[args.module]
        why = f"from {args.source}"
    else:
        chosen, why = _best_from_store(args.store, args.module, current, args.key, args.force)
    generation = max(chosen.generation, current.generation + 1)
    lineage = tuple(dict.fromkeys((*chosen.lineage, current.id)))[-8:]
    # The candidate's idempotency declaration travels with its genes; a source that does
    # not declare one keeps the current declaration rather than silently dropping it.
    idempotent = chosen.idempotent if chosen.idempotent is not None else current.idempotent
    adopted = Genome(args.module, generation, chosen.genes, lineage, idempotent)
    changes = current.diff(adopted)
    print(f"adopting {args.module} generation {generation} ({why})")
    for line in changes:
        print(f"  {line}")
    if args.dry_run:
        print("dry run: nothing proposed, file not written")
        return 0
    return _propose(args, current, adopted, why)


def _propose(args: argparse.Namespace, current: Genome, adopted: Genome, why: str) -> int:
    """The genome file changes only through the guardian: this files a proposal, which
    the approval policy adopts at once (low impact, by default) or leaves for approvers."""
    from pytest_rafael.errors import RafaelError
    from pytest_rafael.guardian import Guardian
    from pytest_rafael.guardian.policy import PolicyError
    from pytest_rafael.guardian.project import find_project_root
    from pytest_rafael.store.core import Store

    try:
        with Store(args.store) as store:
            # The policy comes from the project root, as for the plugin and the
            # guardian's own commands.
            guardian = Guardian.open(store, find_project_root(), Path(args.genome_file).resolve())
            proposal = guardian.propose(
                args.module,
                current.to_dict(),
                adopted.to_dict(),
                {"source": "rafael genome adopt", "reason": why, "tests": []},
            )
            gaps = guardian.pending_requirements(proposal)
    except PolicyError as exc:  # refused by the policy: a failed check
        raise _error(str(exc), 1) from None
    except RafaelError as exc:
        raise _error(str(exc), 2) from None
    print(f"proposal {proposal.id}: impact {proposal.impact}, {proposal.status}")
    if proposal.status == "adopted":
        print(f"wrote {args.genome_file}")
        return 0
    for gap in gaps:
        print(f"  needs: {gap}")
    print(f"approve with: rafael genome approve {proposal.id} --by PRINCIPAL --key PATH")
    return 0


class _OldSpelling(argparse.Action):
    """``--file``, the old spelling of ``--genome``: still works, with a note."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        print(f"{parser.prog}: {option_string} is deprecated, use --genome", file=sys.stderr)
        setattr(namespace, self.dest, values)


def _add_genome_file(p: argparse.ArgumentParser) -> None:
    from pytest_rafael.cli import add_setting

    # One name for the file across `rafael genome` (the guardian's commands always said
    # --genome); --file keeps old scripts working.
    add_setting(p, "genome_file", "--genome", help="genome file")
    p.add_argument(
        "--file", dest="genome_file", type=Path, action=_OldSpelling, help=argparse.SUPPRESS
    )


def register(sub: Any, group: argparse.ArgumentParser) -> None:
    from pytest_rafael.cli import add_setting

    p = sub.add_parser("show", help="print the adopted genome of each module")
    p.add_argument("module", nargs="?", help="only this module")
    _add_genome_file(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("diff", help="changes between two genome files")
    p.add_argument("old", help="genome file before")
    p.add_argument("new", help="genome file after")
    p.add_argument("--module", help="only this module")
    p.add_argument("--exit-code", action="store_true", help="exit 1 when they differ")
    p.set_defaults(func=cmd_diff)

    p = sub.add_parser(
        "adopt",
        help="write a module's best evolved genome (or one from another file) to the file",
    )
    p.add_argument("module", help="the module to adopt a genome for")
    _add_genome_file(p)
    add_setting(p, "store", "--store", help="rafael store: a file or a postgresql:// URL")
    p.add_argument("--key", help="one '<nodeid>::<scenario>' evolution (default: the best)")
    p.add_argument("--from", dest="source", metavar="FILE", help="take the genome from FILE")
    p.add_argument(
        "--force",
        action="store_true",
        help="adopt the best measured candidate even without a significant gain",
    )
    p.add_argument("--dry-run", action="store_true", help="show the change, write nothing")
    p.set_defaults(func=cmd_adopt)
    # proposals, approve and reject: the guardian's review of adoptions, same flags
    from pytest_rafael.genome import review_cli

    review_cli.register(sub, group)
