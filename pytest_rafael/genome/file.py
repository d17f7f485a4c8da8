"""Reading and writing ``rafael.genome.yaml``: one section per module.

Errors are one line, ``path:line: field: problem``. Writes are atomic (a temporary file
in the same folder, fsync, rename) so that an application loading the file never sees
half of it.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from pytest_rafael.common import yaml_limits
from pytest_rafael.common.atomic import atomic_write
from pytest_rafael.common.yaml_nodes import KeyLines, is_mapping
from pytest_rafael.errors import RafaelError
from pytest_rafael.genome.genes import GenomeError
from pytest_rafael.genome.genome import Genome

HEADER = (
    "# rafael.genome.yaml: the adopted resilience genome of each module, read by\n"
    '# @antifragile("<module>"). Written by pytest-rafael after a guardian-approved\n'
    "# adoption (or `rafael genome adopt`); reviewable in pull requests like any code.\n"
)


# The audit anchor: the guardian writes the id and hash of an audit entry of the adoption
# that wrote the file into this comment, so the store's log can be checked against a
# file kept (and reviewed) in the repository: a store rolled back or truncated behind
# that entry no longer contains it.
ANCHOR_PREFIX = "# rafael-audit-anchor:"
_ANCHOR = re.compile(
    r"^# rafael-audit-anchor: entry=(\d+) sha256=([0-9a-f]{64})(?: proposal=([0-9A-Za-z_-]+))?\s*$"
)


class GenomeFileError(RafaelError, ValueError):
    """The genome file cannot be read or does not validate; one line, ``path:line: ...``."""


@dataclass(frozen=True)
class AuditAnchor:
    entry: int
    hash: str
    proposal: str | None = None  # the proposal whose adoption wrote the file

    def line(self) -> str:
        tail = f" proposal={self.proposal}" if self.proposal else ""
        return f"{ANCHOR_PREFIX} entry={self.entry} sha256={self.hash}{tail}"


# A genome file holds a few genes per module: anything this large is a mistake (or a
# device such as /dev/zero given as the file).
MAX_GENOME_BYTES = 10_000_000


def parse_anchor(text: str, source: str = "<genome>") -> AuditAnchor | None:
    """The audit anchor in the file's leading comments (None when there is none)."""
    for number, line in enumerate(text.splitlines(), 1):
        if not line.startswith("#"):
            if line.strip():
                break
            continue
        if line.startswith(ANCHOR_PREFIX):
            m = _ANCHOR.match(line)
            # The entry number is an SQLite INTEGER in the store: 64 bits, signed.
            if m is None or len(m.group(1)) > 19 or int(m.group(1)) >= 2**63:
                raise GenomeFileError(f"{source}:{number}: malformed audit anchor: {line!r}")
            return AuditAnchor(int(m.group(1)), m.group(2), m.group(3))
    return None


def read_anchor(path: str | os.PathLike[str]) -> AuditAnchor | None:
    """The audit anchor of the genome file at ``path``; None when the file is missing or
    carries none."""
    p = Path(path)
    try:
        text = yaml_limits.read_bounded(p, MAX_GENOME_BYTES).decode("utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise GenomeFileError(f"{p}: cannot read: {exc}") from None
    return parse_anchor(text, str(p))


def load_genome_file(path: str | os.PathLike[str]) -> dict[str, Genome]:
    """Every module's genome in the file; a missing file is an empty mapping."""
    p = Path(path)
    try:
        text = yaml_limits.read_bounded(p, MAX_GENOME_BYTES).decode("utf-8")
    except FileNotFoundError:
        return {}
    except UnicodeDecodeError as exc:
        line = exc.object[: exc.start].count(b"\n") + 1
        raise GenomeFileError(
            f"{p}:{line}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start})"
        ) from None
    except IsADirectoryError:
        raise GenomeFileError(f"{p}: is a folder, not a genome file") from None
    except OSError as exc:
        raise GenomeFileError(f"{p}: cannot read: {exc.strerror or exc}") from None
    return parse_genome_text(text, str(p))


def parse_genome_text(text: str, source: str = "<genome>") -> dict[str, Genome]:
    try:
        data, root = yaml_limits.load(text)
    except yaml_limits.YamlInputError as exc:
        raise GenomeFileError(f"{source}:{exc.line}: invalid YAML: {exc.problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise GenomeFileError(
            f"{source}:1: expected a mapping of module names to genomes, got {type(data).__name__}"
        )
    if is_mapping(root):
        seen: set[str] = set()
        for key, _ in root.value:
            if key.value in seen:
                raise GenomeFileError(
                    f"{source}:{key.start_mark.line + 1}: {key.value}: module given twice"
                )
            seen.add(key.value)
    genomes: dict[str, Genome] = {}
    for module, section in data.items():
        if not isinstance(module, str):
            raise GenomeFileError(
                f"{source}:{KeyLines(root).line(())}: module names must be strings, got {module!r}"
            )
        try:
            genomes[module] = Genome.from_dict(module, section)
        except GenomeError as exc:
            msg = str(exc)
            field = msg.partition(": ")[0]
            rel = field[len(module) + 1 :] if field.startswith(module + ".") else ""
            parts = [module, *(rel.split(".") if rel else [])]
            raise GenomeFileError(f"{source}:{KeyLines(root).line(parts)}: {msg}") from None
    return genomes


def _flow(value: Any) -> str:
    return str(yaml.safe_dump(value, default_flow_style=True, width=10**6, sort_keys=False)).strip()


@dataclass(frozen=True)
class Comments:
    """What a person wrote in the file being replaced, and where: the comment block
    before the first module (the generated header and audit anchor aside), the block
    right above each later module, and the order of the modules. The rewrite keeps that
    order (new modules go last, sorted), so every block stays above the module it was
    above. A comment inside a module's section goes with the values it described."""

    head: tuple[str, ...] = ()
    above: Mapping[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    order: tuple[str, ...] = ()


def kept_comments(text: str) -> Comments:
    generated = set(HEADER.splitlines())
    head: tuple[str, ...] = ()
    above: dict[str, tuple[str, ...]] = {}
    order: list[str] = []
    pending: list[str] = []
    for line in text.splitlines():
        if line.startswith("#"):
            if line not in generated and not line.startswith(ANCHOR_PREFIX):
                pending.append(line)
            continue
        module = _top_level_key(line)
        if module is None:
            continue
        if not order:
            head = tuple(pending)
        elif pending:
            above[module] = tuple(pending)
        order.append(module)
        pending = []
    return Comments(head, above, tuple(order))


def _top_level_key(line: str) -> str | None:
    if not line[:1].strip() or line.startswith(("-", "#")):
        return None  # blank, indented (a module's own values) or not a key
    try:
        parsed = yaml.safe_load(line)
    except yaml.YAMLError:
        return None
    if isinstance(parsed, dict) and len(parsed) == 1:
        key = next(iter(parsed))
        return key if isinstance(key, str) else None
    return None


def dump_genomes(
    genomes: Mapping[str, Genome],
    anchor: AuditAnchor | None = None,
    comments: Comments | None = None,
) -> str:
    comments = comments or Comments()
    lines = [HEADER.rstrip("\n")]
    if anchor is not None:
        lines.append(anchor.line())
    lines.extend(comments.head)
    kept = [m for m in comments.order if m in genomes]
    for module in kept + sorted(set(genomes) - set(kept)):
        g = genomes[module]
        lines.extend(comments.above.get(module, ()))
        lines.append(f"{_flow([module])[1:-1]}:")  # quoted only when YAML needs it
        lines.append(f"  generation: {g.generation}")
        if not g.genes:
            lines.append("  genes: {}")
        else:
            lines.append("  genes:")
            for kind, gene in g.genes.items():
                lines.append(f"    {kind}: {_flow(gene.to_dict())}")
        if g.lineage:
            lines.append(f"  lineage: {_flow(list(g.lineage))}")
        if g.idempotent is not None:
            lines.append(f"  idempotent: {'true' if g.idempotent else 'false'}")
    return "\n".join(lines) + "\n"


def write_genome_file(
    path: str | os.PathLike[str],
    genomes: Mapping[str, Genome],
    anchor: AuditAnchor | None = None,
) -> None:
    """Replace the file atomically with ``genomes`` (validated by re-reading the text),
    carrying ``anchor`` (the guardian's audit head) when given, and the comments a person
    wrote in the file it replaces (see :class:`Comments`)."""
    p = Path(path)
    try:
        comments = kept_comments(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError):  # no file yet, or one that is replaced whole
        comments = Comments()
    text = dump_genomes(genomes, anchor, comments)
    reread = parse_genome_text(text, str(p))  # never write what we could not read back
    if (
        set(reread) != set(genomes)
        or any(reread[m].id != genomes[m].id for m in genomes)
        or parse_anchor(text, str(p)) != anchor
    ):
        raise GenomeFileError(f"{p}: internal error: the written genome does not read back")
    p.parent.mkdir(parents=True, exist_ok=True)
    # Durable: the genome file is the record of an adoption; it keeps its permissions.
    atomic_write(p, text, durable=True)
