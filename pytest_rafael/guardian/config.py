"""Guardian configuration: ``[tool.rafael.guardian]`` in pyproject.toml, or a
``[rafael.guardian]`` section in pytest.ini / tox.ini / setup.cfg.

pyproject.toml::

    [tool.rafael.guardian]
    approvals = {low = 0, medium = 1, high = 2, critical = 2}
    critical_role = "security-lead"
    roles = {security-lead = ["carol", "dave"]}     # optional: who may claim a role
    webhook_url = "https://hooks.example.com/rafael"
    webhook_timeout = 5.0
    allowed_signers = "rafael.allowed_signers"      # who may sign decisions (OpenSSH)
    change_thresholds = {medium = 0.25, high = 1.0}  # relative parameter change
    evidence_min_success_rate = 0.5
    [tool.rafael.guardian.modules]
    payments = {criticality = "critical", tags = ["pci"]}

ini::

    [rafael.guardian]
    approvals = low:0 medium:1 high:2 critical:2
    critical_role = security-lead
    roles = security-lead: carol dave
    modules =
        payments: critical pci
        search: low

Every error names the file and key.
"""

from __future__ import annotations

import configparser
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from pytest_rafael.errors import RafaelError

LEVELS: tuple[str, ...] = ("low", "medium", "high", "critical")

DEFAULT_APPROVALS: Mapping[str, int] = MappingProxyType(
    {"low": 0, "medium": 1, "high": 2, "critical": 2}
)
INI_FILES: tuple[str, ...] = ("pytest.ini", "tox.ini", "setup.cfg")


class GuardianConfigError(RafaelError, ValueError):
    """The guardian configuration is invalid; the message names file and key."""


@dataclass(frozen=True)
class ModulePolicy:
    criticality: str = "low"
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class GuardianConfig:
    approvals: Mapping[str, int] = field(default_factory=lambda: DEFAULT_APPROVALS)
    critical_role: str = "security-lead"
    # role -> identities allowed to claim it; a role absent here is taken as declared
    # (and audited), so small teams need no directory.
    roles: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))
    modules: Mapping[str, ModulePolicy] = field(default_factory=lambda: MappingProxyType({}))
    change_thresholds: Mapping[str, float] = field(
        default_factory=lambda: MappingProxyType({"medium": 0.25, "high": 1.0})
    )
    evidence_min_success_rate: float = 0.5
    webhook_url: str | None = None
    webhook_timeout: float = 5.0
    # The OpenSSH allowed-signers file decisions are verified against (relative to the
    # project root); None: rafael.allowed_signers at the project root.
    allowed_signers: str | None = None
    source: str = "defaults"

    def module(self, name: str) -> ModulePolicy:
        return self.modules.get(name, ModulePolicy())


def load_guardian_config(project_root: Path) -> GuardianConfig:
    """Read the guardian section from ``project_root``; defaults when there is none."""
    pyproject = project_root / "pyproject.toml"
    if pyproject.is_file():
        table = _toml_section(pyproject)
        if table is not None:
            return _from_mapping(table, f"{pyproject} [tool.rafael.guardian]")
    for name in INI_FILES:
        path = project_root / name
        if not path.is_file():
            continue
        parser = configparser.ConfigParser(interpolation=None)
        try:
            parser.read(path, encoding="utf-8")
        except configparser.Error as exc:
            raise GuardianConfigError(f"{path}: {str(exc).splitlines()[0]}") from None
        if parser.has_section("rafael.guardian"):
            return _from_ini(dict(parser["rafael.guardian"]), f"{path} [rafael.guardian]")
    return GuardianConfig()


def _toml_section(path: Path) -> dict[str, Any] | None:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on 3.10 only
        try:
            import tomli as tomllib  # type: ignore[import-not-found]
        except ImportError:
            raise GuardianConfigError(
                f"{path}: reading [tool.rafael.guardian] on Python 3.10 needs 'tomli'"
            ) from None
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise GuardianConfigError(f"{path}: {exc}") from None
    section = data.get("tool", {}).get("rafael", {}).get("guardian")
    if section is None:
        return None
    if not isinstance(section, dict):
        raise GuardianConfigError(f"{path}: [tool.rafael.guardian] must be a table")
    return section


def _from_ini(raw: dict[str, str], where: str) -> GuardianConfig:
    table: dict[str, Any] = {}
    for key, value in raw.items():
        if key in ("approvals", "change_thresholds"):
            table[key] = _pairs(value, where, key)
        elif key == "roles":
            table[key] = {k: v.split() for k, v in _lines(value, where, key).items()}
        elif key == "modules":
            modules: dict[str, Any] = {}
            for name, rest in _lines(value, where, key).items():
                words = rest.split()
                if not words:
                    raise GuardianConfigError(f"{where} modules: {name!r} needs a criticality")
                modules[name] = {"criticality": words[0], "tags": words[1:]}
            table[key] = modules
        else:
            table[key] = value
    return _from_mapping(table, where)


def _lines(value: str, where: str, key: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in value.replace(",", "\n").splitlines():
        if not line.strip():
            continue
        name, sep, rest = line.partition(":")
        if not sep or not name.strip():
            raise GuardianConfigError(f"{where} {key}: expected 'name: value', got {line!r}")
        out[name.strip()] = rest.strip()
    return out


def _pairs(value: str, where: str, key: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in value.replace(",", " ").split():
        name, sep, rest = item.partition(":")
        if not sep:
            raise GuardianConfigError(f"{where} {key}: expected 'level:number', got {item!r}")
        out[name] = rest
    return out


_KNOWN_KEYS = frozenset(
    {
        "approvals",
        "critical_role",
        "roles",
        "modules",
        "change_thresholds",
        "evidence_min_success_rate",
        "webhook_url",
        "webhook_timeout",
        "allowed_signers",
    }
)


def _from_mapping(table: Mapping[str, Any], where: str) -> GuardianConfig:
    unknown = sorted(set(table) - _KNOWN_KEYS)
    if unknown:
        raise GuardianConfigError(
            f"{where}: unknown key {unknown[0]!r} (known: {', '.join(sorted(_KNOWN_KEYS))})"
        )
    approvals = _approvals(table, where)
    thresholds = _thresholds(table, where)
    roles: dict[str, tuple[str, ...]] = {}
    for role, members in _table(table, "roles", where).items():
        if isinstance(members, str) or not isinstance(members, list):
            raise GuardianConfigError(f"{where} roles.{role}: expected a list of names")
        roles[str(role)] = tuple(str(m) for m in members)
    modules = {
        str(name): _module_policy(spec, f"{where} modules.{name}")
        for name, spec in _table(table, "modules", where).items()
    }
    rate = _float(table.get("evidence_min_success_rate", 0.5), f"{where} evidence_min_success_rate")
    if not 0.0 <= rate <= 1.0:
        raise GuardianConfigError(f"{where} evidence_min_success_rate: expected 0..1")
    url = table.get("webhook_url")
    if url is not None:
        url = str(url)
        if not url.startswith(("http://", "https://")):
            raise GuardianConfigError(f"{where} webhook_url: expected an http(s) URL, got {url!r}")
    timeout = _float(table.get("webhook_timeout", 5.0), f"{where} webhook_timeout")
    if timeout <= 0:
        raise GuardianConfigError(f"{where} webhook_timeout: expected a positive number")
    signers = table.get("allowed_signers")
    if signers is not None and (not isinstance(signers, str) or not signers.strip()):
        raise GuardianConfigError(f"{where} allowed_signers: expected a file path")
    role = table.get("critical_role", "security-lead")
    if not isinstance(role, str) or not role.strip():
        raise GuardianConfigError(f"{where} critical_role: expected a role name, got {role!r}")
    role = role.strip()
    return GuardianConfig(
        approvals=MappingProxyType(approvals),
        critical_role=role,
        roles=MappingProxyType(roles),
        modules=MappingProxyType(modules),
        change_thresholds=MappingProxyType(thresholds),
        evidence_min_success_rate=rate,
        webhook_url=url or None,
        webhook_timeout=timeout,
        allowed_signers=signers.strip() if signers else None,
        source=where,
    )


def _approvals(table: Mapping[str, Any], where: str) -> dict[str, int]:
    approvals = dict(DEFAULT_APPROVALS)
    for level, count in _table(table, "approvals", where).items():
        if level not in LEVELS:
            raise GuardianConfigError(
                f"{where} approvals: unknown level {level!r} (levels: {', '.join(LEVELS)})"
            )
        approvals[level] = _int(count, f"{where} approvals.{level}")
    return approvals


def _thresholds(table: Mapping[str, Any], where: str) -> dict[str, float]:
    thresholds = {"medium": 0.25, "high": 1.0}
    for level, value in _table(table, "change_thresholds", where).items():
        if level not in thresholds:
            raise GuardianConfigError(f"{where} change_thresholds: unknown level {level!r}")
        thresholds[level] = _float(value, f"{where} change_thresholds.{level}")
    if thresholds["medium"] > thresholds["high"]:
        raise GuardianConfigError(f"{where} change_thresholds: medium must not exceed high")
    return thresholds


def _module_policy(spec: Any, where: str) -> ModulePolicy:
    """``where``: ``<source> modules.<name>``."""
    if isinstance(spec, str):
        spec = {"criticality": spec}
    if not isinstance(spec, dict):
        raise GuardianConfigError(f"{where}: expected a table")
    crit = str(spec.get("criticality", "low"))
    if crit not in LEVELS:
        raise GuardianConfigError(
            f"{where}.criticality: {crit!r} is not one of {', '.join(LEVELS)}"
        )
    tags = spec.get("tags", [])
    if isinstance(tags, str) or not isinstance(tags, list):
        raise GuardianConfigError(f"{where}.tags: expected a list")
    extra = set(spec) - {"criticality", "tags"}
    if extra:
        raise GuardianConfigError(f"{where}: unknown key {sorted(extra)[0]!r}")
    return ModulePolicy(crit, tuple(str(t).lower() for t in tags))


def _table(table: Mapping[str, Any], key: str, where: str) -> dict[str, Any]:
    value = table.get(key, {})
    if not isinstance(value, dict):
        raise GuardianConfigError(f"{where} {key}: expected a table")
    return value


def _int(value: Any, where: str) -> int:
    # int(1.5) is 1: a fractional count of approvals is a mistake to name, not to round.
    if isinstance(value, float) and not value.is_integer():
        raise GuardianConfigError(f"{where}: expected a whole number, got {value!r}")
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError):
        raise GuardianConfigError(f"{where}: expected a whole number, got {value!r}") from None
    if number < 0 or isinstance(value, bool):
        raise GuardianConfigError(f"{where}: expected a whole number >= 0, got {value!r}")
    return number


def _float(value: Any, where: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise GuardianConfigError(f"{where}: expected a number, got {value!r}") from None
    if isinstance(value, bool) or number != number:
        raise GuardianConfigError(f"{where}: expected a number, got {value!r}")
    return number
