"""Loading and validating pattern files (YAML, one pattern per file).

Every problem is a :class:`VaultError` whose message is one line,
``file:line: field: problem``, so a user with a bad pattern in ``rafael_vault_dirs`` can
fix it without reading a traceback.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path
from typing import Any

from pytest_rafael.common import yaml_limits
from pytest_rafael.common.yaml_nodes import KeyLines, safe_loader
from pytest_rafael.errors import RafaelError

from .models import (
    CATEGORIES,
    GENE_PARAMETERS,
    VERIFICATION_STATUSES,
    CodeExample,
    GeneConfig,
    Pattern,
    Reference,
)

BUILTIN_DIR = Path(__file__).with_name("patterns")
_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]{1,79}$")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.+-]*$")
_URL = re.compile(r"^https?://[^\s/$.?#][^\s]*$")
_REQUIRED = (
    "id",
    "name",
    "category",
    "technology_stack",
    "problem",
    "solution",
    "code_example",
    "configuration",
    "threats",
    "verification_status",
    "reliability_score",
    "tags",
    "references",
)
_OPTIONAL = ("gene",)

# The C loader (when PyYAML was built with libyaml) is several times faster on the ~60
# built-in files; both are safe loaders.


class VaultError(RafaelError, ValueError):
    """A pattern file is invalid; ``str()`` is ``file:line: field: problem``."""


class _Checker:
    """Field checks for one file; each failure raises with file:line: field."""

    def __init__(self, source: str, lines: KeyLines) -> None:
        self.source = source
        self.lines = lines

    def fail(self, field: str, problem: str) -> VaultError:
        return VaultError(f"{self.source}:{self.lines.line(field)}: {field}: {problem}")

    def text(self, data: Mapping[str, Any], key: str, prefix: str = "") -> str:
        value = data.get(key)
        if not isinstance(value, str) or not value.strip():
            raise self.fail(prefix + key, f"expected non-empty text, got {value!r}")
        return value.strip()

    def names(
        self, data: Mapping[str, Any], key: str, *, allow_empty: bool = False
    ) -> tuple[str, ...]:
        value = data.get(key)
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or (not value and not allow_empty):
            raise self.fail(key, f"expected a non-empty list of names, got {value!r}")
        out: list[str] = []
        for item in value:
            if isinstance(item, int) and not isinstance(item, bool):
                item = str(item)  # tags such as 429 or 503 arrive from YAML as numbers
            if not isinstance(item, str) or not _NAME.match(item.strip().lower()):
                raise self.fail(key, f"bad name {item!r} (lowercase letters, digits, _.+-)")
            name = item.strip().lower()
            if name in out:
                raise self.fail(key, f"{name!r} is listed twice")
            out.append(name)
        return tuple(out)


def parse_pattern(
    text: str,
    source: str,
    known_threats: Collection[str] | None = None,
    *,
    check_syntax: bool = True,
) -> Pattern:
    """Validate one pattern document. ``known_threats``: if given, every threat must be one.
    ``check_syntax``: compile Python examples (skipped for the built-in files, whose
    examples the test suite runs, to keep loading fast)."""
    try:
        # One parse: compose the node tree (for line numbers), then construct from it.
        data, node = yaml_limits.load(text, safe_loader())
    except yaml_limits.YamlInputError as exc:
        raise VaultError(f"{source}:{exc.line}: yaml: {exc.problem}") from None
    check = _Checker(source, KeyLines(node, fallback=1))
    _check_fields(check, data, source)
    pattern_id, category, status, score = _classification(check, data)
    # Empty is allowed: some patterns (SQL injection prevention) guard against no chaos threat.
    threats = check.names(data, "threats", allow_empty=True)
    if known_threats is not None:
        for threat in threats:
            if threat not in known_threats:
                raise check.fail(
                    "threats",
                    f"unknown threat scenario {threat!r} "
                    f"(known: {', '.join(sorted(known_threats))})",
                )
    configuration = data["configuration"]
    if not isinstance(configuration, dict):
        raise check.fail("configuration", f"expected a mapping, got {configuration!r:.60}")
    return Pattern(
        id=pattern_id,
        name=check.text(data, "name"),
        category=category,
        technology_stack=check.names(data, "technology_stack"),
        problem=check.text(data, "problem"),
        solution=check.text(data, "solution"),
        code_example=_code_example(check, data["code_example"], check_syntax),
        configuration=configuration,
        threats=threats,
        verification_status=status,
        reliability_score=float(score),
        tags=check.names(data, "tags", allow_empty=True),
        references=_references(check, data["references"]),
        gene=_gene(check, data.get("gene")),
        source=source,
    )


def _check_fields(check: _Checker, data: Any, source: str) -> None:
    """A mapping with every required field and no unknown one."""
    if not isinstance(data, dict):
        raise VaultError(f"{source}:1: pattern: expected a mapping of fields, got {data!r:.60}")
    unknown = sorted(set(map(str, data)) - set(_REQUIRED) - set(_OPTIONAL))
    if unknown:
        raise check.fail(unknown[0], f"unknown field (known: {', '.join(_REQUIRED + _OPTIONAL)})")
    for key in _REQUIRED:
        if key not in data:
            raise VaultError(f"{source}:1: {key}: missing required field")


def _classification(check: _Checker, data: dict[str, Any]) -> tuple[str, str, str, float]:
    """The pattern's id, category, verification status and reliability score."""
    pattern_id = data["id"]
    if not isinstance(pattern_id, str) or not _ID.match(pattern_id):
        raise check.fail("id", f"bad id {pattern_id!r} (2-80 chars: a-z 0-9 _ . -)")
    category = check.text(data, "category")
    if category not in CATEGORIES:
        raise check.fail(
            "category", f"unknown category {category!r} (known: {', '.join(CATEGORIES)})"
        )
    status = check.text(data, "verification_status")
    if status not in VERIFICATION_STATUSES:
        raise check.fail(
            "verification_status",
            f"expected one of {', '.join(VERIFICATION_STATUSES)}, got {status!r}",
        )
    score = data["reliability_score"]
    if isinstance(score, bool) or not isinstance(score, int | float) or not 0 <= score <= 1:
        raise check.fail("reliability_score", f"expected a number from 0 to 1, got {score!r}")
    return pattern_id, category, status, float(score)


def _code_example(check: _Checker, value: Any, check_syntax: bool) -> CodeExample:
    if not isinstance(value, dict):
        raise check.fail("code_example", "expected a mapping with language and code")
    unknown = sorted(set(map(str, value)) - {"language", "code", "demo", "requires", "services"})
    if unknown:
        raise check.fail(
            f"code_example.{unknown[0]}",
            "unknown field (known: language, code, demo, requires, services)",
        )
    language = check.text(value, "language", "code_example.").lower()
    code = check.text(value, "code", "code_example.")
    demo = value.get("demo", "")
    if not isinstance(demo, str):
        raise check.fail("code_example.demo", "expected text")
    if language == "python" and check_syntax:
        for key, snippet in (("code", code), ("demo", demo)):
            try:
                compile(snippet, f"{check.source}:code_example.{key}", "exec")
            except SyntaxError as exc:
                raise check.fail(
                    f"code_example.{key}", f"Python syntax error line {exc.lineno}: {exc.msg}"
                ) from None
            except ValueError as exc:  # e.g. a NUL byte in the source
                raise check.fail(f"code_example.{key}", f"not Python source: {exc}") from None
    lists: dict[str, tuple[str, ...]] = {}
    for key in ("requires", "services"):
        items = value.get(key, [])
        if not isinstance(items, list) or not all(isinstance(i, str) and i for i in items):
            raise check.fail(f"code_example.{key}", f"expected a list of names, got {items!r}")
        lists[key] = tuple(items)
    return CodeExample(language, code + "\n", demo, lists["requires"], lists["services"])


def _references(check: _Checker, value: Any) -> tuple[Reference, ...]:
    if not isinstance(value, list) or not value:
        raise check.fail("references", "expected a non-empty list of {title, url}")
    refs: list[Reference] = []
    for item in value:
        if not isinstance(item, dict) or not isinstance(item.get("title"), str):
            raise check.fail("references", f"each reference needs a title, got {item!r:.60}")
        url = item.get("url")
        if url is not None and (not isinstance(url, str) or not _URL.match(url)):
            raise check.fail("references", f"bad url {url!r} (http:// or https://)")
        refs.append(Reference(item["title"].strip(), url))
    return tuple(refs)


def _gene(check: _Checker, value: Any) -> GeneConfig | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("name"), str):
        raise check.fail("gene", "expected {name: <gene>, parameters: {...}}")
    name = value["name"]
    spec = GENE_PARAMETERS.get(name)
    if spec is None:
        raise check.fail(
            "gene.name", f"unknown gene {name!r} (known: {', '.join(GENE_PARAMETERS)})"
        )
    params = value.get("parameters", {})
    if not isinstance(params, dict):
        raise check.fail("gene.parameters", "expected a mapping")
    # YAML 1.1 reads a bare `on:` key as the boolean True; fallback's parameter is "on".
    params = {("on" if key is True else key): v for key, v in params.items()}
    for key, param in params.items():
        field = f"gene.parameters.{key}"
        if key not in spec:
            raise check.fail(field, f"{name} has no parameter {key!r} (known: {', '.join(spec)})")
        kind, low, high = spec[key]
        if kind is list:
            if isinstance(param, str):
                param = [param]
            if not isinstance(param, list) or not all(isinstance(p, str) for p in param):
                raise check.fail(field, f"expected a list of exception names, got {param!r}")
            continue
        if kind is object:
            continue
        numeric = isinstance(param, int | float) and not isinstance(param, bool)
        if not numeric or (kind is int and not isinstance(param, int)):
            raise check.fail(field, f"expected {kind.__name__}, got {param!r}")
        if (low is not None and param < low) or (high is not None and param > high):
            raise check.fail(field, f"{param!r} is out of range [{low}, {high}]")
    return GeneConfig(name, dict(params))


def load_file(
    path: Path, known_threats: Collection[str] | None = None, *, check_syntax: bool = True
) -> Pattern:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise VaultError(f"{path}:1: file: cannot read: {exc}") from None
    return parse_pattern(text, str(path), known_threats, check_syntax=check_syntax)


def pattern_files(directory: Path) -> list[Path]:
    """The ``*.yaml`` / ``*.yml`` files of a folder (not recursive), sorted."""
    if not directory.is_dir():
        raise VaultError(f"{directory}:1: folder: not a directory")
    return sorted(p for p in directory.iterdir() if p.suffix in (".yaml", ".yml"))


def load_dirs(
    directories: Iterable[Path],
    known_threats: Collection[str] | None = None,
    *,
    check_syntax: bool = True,
) -> list[Pattern]:
    """Every pattern of the folders, in order; a repeated id is an error naming both files."""
    seen: dict[str, Pattern] = {}
    for directory in directories:
        for path in pattern_files(Path(directory)):
            pattern = load_file(path, known_threats, check_syntax=check_syntax)
            if pattern.id in seen:
                raise VaultError(
                    f"{path}:1: id: {pattern.id!r} is already defined in {seen[pattern.id].source}"
                )
            seen[pattern.id] = pattern
    return list(seen.values())
