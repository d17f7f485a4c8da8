"""Roles in the allowed-signers file: a ``rafael-roles`` key option.

::

    dave namespaces="rafael",rafael-roles="security-lead" ssh-ed25519 AAAAC3Nz...

OpenSSH refuses a line with an option it does not know, so ssh-keygen is given a copy of
the file without ``rafael-roles`` (only when the file uses it); everything else on the
line, and every other line, reaches ssh-keygen unchanged. The roles are read here and
attached to the key the line lists. This module only splits text: it verifies nothing.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from pathlib import Path

ROLE_OPTION = "rafael-roles"


@dataclass(frozen=True)
class SignerLine:
    """One line of an allowed-signers file, split the way OpenSSH splits it."""

    principals: str
    options: tuple[str, ...]
    rest: str  # "keytype base64 [comment]"

    @property
    def key_blob(self) -> bytes | None:
        parts = self.rest.split()
        if len(parts) < 2:
            return None
        try:
            return base64.b64decode(parts[1], validate=True)
        except (binascii.Error, ValueError):
            return None

    @property
    def roles(self) -> tuple[str, ...]:
        out: list[str] = []
        for opt in self.options:
            name, _, value = opt.partition("=")
            if name.strip().lower() == ROLE_OPTION:
                out += value.strip().strip('"').replace(",", " ").split()
        return tuple(out)

    def without_roles(self) -> str:
        kept = [o for o in self.options if o.partition("=")[0].strip().lower() != ROLE_OPTION]
        return " ".join([self.principals, *([",".join(kept)] if kept else []), self.rest])


def _token(text: str) -> tuple[str, str]:
    """The first whitespace-delimited token (double quotes protect whitespace) and the
    text after it."""
    quoted = False
    for i, ch in enumerate(text):
        if ch == '"':
            quoted = not quoted
        elif ch.isspace() and not quoted:
            return text[:i], text[i:].lstrip()
    return text, ""


def _split_options(token: str) -> tuple[str, ...]:
    parts, buf, quoted = [], "", False
    for ch in token:
        if ch == '"':
            quoted = not quoted
        if ch == "," and not quoted:
            parts.append(buf)
            buf = ""
        else:
            buf += ch
    parts.append(buf)
    return tuple(p for p in parts if p)


def _is_key_type(token: str) -> bool:
    return token.startswith(("ssh-", "ecdsa-", "sk-")) or token.endswith("-cert-v01@openssh.com")


def parse_line(line: str) -> SignerLine | None:
    """None for blank lines and comments."""
    text = line.strip()
    if not text or text.startswith("#"):
        return None
    principals, rest = _token(text)
    options: tuple[str, ...] = ()
    first, after = _token(rest)
    if first and not _is_key_type(first):
        options, rest = _split_options(first), after
    return SignerLine(principals, options, rest)


def uses_roles(path: Path) -> bool:
    try:
        return ROLE_OPTION in path.read_text(encoding="utf-8", errors="replace").lower()
    except OSError:
        return False


def for_ssh_keygen(path: Path, folder: Path) -> Path:
    """The file to give ssh-keygen: ``path`` itself, or (when it uses ``rafael-roles``) a
    copy in ``folder`` with that option removed from every line."""
    if not uses_roles(path):
        return path
    lines = []
    for raw in path.read_text(encoding="utf-8", errors="replace").splitlines():
        parsed = parse_line(raw)
        lines.append(raw if parsed is None or not parsed.roles else parsed.without_roles())
    copy = folder / "allowed_signers"
    copy.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return copy


def roles_of_key(path: Path, key_blob: bytes) -> tuple[str, ...]:
    """The roles the file gives the key ``key_blob`` (on any of its lines)."""
    if not uses_roles(path):
        return ()
    out: list[str] = []
    for raw in path.read_text(encoding="utf-8", errors="replace").splitlines():
        parsed = parse_line(raw)
        if parsed is not None and parsed.key_blob == key_blob:
            out += [r for r in parsed.roles if r not in out]
    return tuple(out)


def declared_roles(path: Path) -> frozenset[str]:
    """Every role some key holds in the file (case-folded)."""
    if not uses_roles(path):
        return frozenset()
    found: set[str] = set()
    for raw in path.read_text(encoding="utf-8", errors="replace").splitlines():
        parsed = parse_line(raw)
        if parsed is not None:
            found.update(r.casefold() for r in parsed.roles)
    return frozenset(found)
