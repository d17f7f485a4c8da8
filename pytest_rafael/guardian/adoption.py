"""Writing an adopted genome into the genome file, anchored to the audit log."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pytest_rafael.guardian.errors import GuardianError
from pytest_rafael.guardian.policy import PolicyError
from pytest_rafael.guardian.proposals import Proposal


def genomes_to_write(path: Path, p: Proposal) -> dict[str, Any]:
    """The genomes the file will hold once ``p`` is adopted; refuses (PolicyError) when
    the module's genome in the file changed since ``p`` was proposed."""
    from pytest_rafael.genome.file import load_genome_file
    from pytest_rafael.genome.genome import Genome

    try:
        genomes = dict(load_genome_file(path)) if path.exists() else {}
    except (OSError, ValueError) as exc:
        raise GuardianError(f"{path}: cannot read the genome file: {exc}") from None
    try:
        candidate = Genome.from_dict(p.module, dict(p.candidate))
        baseline = Genome.from_dict(p.module, dict(p.baseline)) if p.baseline else None
    except ValueError as exc:
        # Validated when proposed; failing now means the stored row was edited.
        raise GuardianError(f"proposal {p.id}: stored genome is invalid: {exc}") from None
    current = genomes.get(p.module)
    # Already holding the candidate is not a conflict: a process killed between the
    # file's rename and the store's commit leaves exactly that, and approving again
    # must then complete the adoption.
    if current is not None and current.genes_dict() != candidate.genes_dict():
        expected = baseline.genes_dict() if baseline is not None else None
        if current.genes_dict() != expected:
            # Someone adopted another genome for this module since the proposal was
            # made; writing ours would silently undo theirs.
            raise PolicyError(
                f"the genome of {p.module!r} in {path} changed since proposal {p.id} was made;"
                " re-run the chaos suite to propose again"
            )
    genomes[p.module] = candidate
    return genomes


def write_genome(path: Path, genomes: Mapping[str, Any], anchor: Any) -> tuple[Path, str]:
    from pytest_rafael.genome.file import write_genome_file

    try:
        write_genome_file(path, genomes, anchor)
        data = path.read_bytes()
    except (OSError, ValueError) as exc:
        raise GuardianError(f"{path}: cannot write the genome file: {exc}") from None
    return path, hashlib.sha256(data).hexdigest()


def display_path(path: Path, root: Path) -> str:
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)


def validated(module: str, genome: Mapping[str, Any], what: str) -> dict[str, Any]:
    """Check a genome dict through the genome package; returns its canonical dict."""
    from pytest_rafael.genome.genome import Genome

    try:
        return Genome.from_dict(module, dict(genome)).to_dict()
    except ValueError as exc:  # GenomeError is a ValueError
        raise GuardianError(f"{what} genome: {exc}") from None


def changes(
    module: str, baseline: Mapping[str, Any] | None, candidate: Mapping[str, Any]
) -> list[str]:
    from pytest_rafael.genome.genome import Genome

    new = Genome.from_dict(module, dict(candidate))
    old = Genome.from_dict(module, dict(baseline)) if baseline is not None else Genome(module)
    return old.diff(new)
