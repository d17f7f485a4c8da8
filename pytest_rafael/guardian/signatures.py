"""Signed decisions: OpenSSH ``sshsig`` signatures (namespace ``rafael``) checked
against an ``allowed_signers`` file kept in the repository.

This is the scheme git uses to sign commits with SSH keys. Signing and verifying are done
by ``ssh-keygen -Y sign|verify|find-principals`` (openssh-client): no cryptography is
implemented here. What this module does itself is build the exact bytes a decision
signs (:func:`decision_payload`), find the signing key, and read the signer's public key
out of a signature to name it by its fingerprint (SHA-256 of the key blob, as
``ssh-keygen -l`` prints it).

The allowed-signers file (``rafael.allowed_signers`` at the project root by default,
``allowed_signers = "PATH"`` in ``[tool.rafael.guardian]``) has OpenSSH's format, one key
per line::

    carol namespaces="rafael" ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA...
    dave,dave@example.com namespaces="rafael" ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA...

Changing who may approve is then a change to a reviewed file.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import hashlib
import os
import shutil
import struct
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pytest_rafael.guardian.audit_hash import canonical_json
from pytest_rafael.guardian.policy import PolicyError
from pytest_rafael.guardian.signers_file import for_ssh_keygen, roles_of_key

NAMESPACE = "rafael"
DEFAULT_ALLOWED_SIGNERS = "rafael.allowed_signers"
SIGNING_KEY_ENV = "RAFAEL_SIGNING_KEY"
PAYLOAD_VERSION = "rafael-decision/1"
_TIMEOUT = 60.0

HOW_TO_CREATE = (
    "create it with one line per approver, "
    "'NAME namespaces=\"rafael\" <the contents of their ~/.ssh/id_ed25519.pub>', "
    "and commit it (see docs/guardian.md)"
)


class SignatureError(PolicyError):
    """A decision that is not signed, or whose signature does not verify; refused."""


@dataclass(frozen=True)
class Signer:
    """Who signed: the key's fingerprint and every principal the allowed-signers file
    lists for that key."""

    fingerprint: str
    principals: tuple[str, ...]
    # Roles the allowed-signers file gives this key (``rafael-roles="..."``).
    roles: tuple[str, ...] = ()


def ssh_keygen() -> str:
    path = shutil.which("ssh-keygen")
    if path is None:
        raise SignatureError(
            "ssh-keygen is needed to sign and verify decisions: install OpenSSH's client "
            "(apt-get install openssh-client, dnf install openssh-clients, brew install openssh)"
        )
    return path


def allowed_signers_path(project_root: Path, configured: str | None) -> Path:
    path = Path(configured) if configured else Path(DEFAULT_ALLOWED_SIGNERS)
    path = path.expanduser()
    return path if path.is_absolute() else Path(project_root) / path


def require_allowed_signers(path: Path) -> None:
    if path.is_dir():
        raise SignatureError(f"{path} is a folder, not an allowed-signers file")
    if not path.is_file():
        raise SignatureError(f"no allowed-signers file at {path}: {HOW_TO_CREATE}")
    # ssh-keygen reads an unreadable file as an empty one: every key would then be "not
    # listed", a verdict about the key when the trouble is the file.
    try:
        with path.open("rb"):
            pass
    except OSError as exc:
        raise SignatureError(
            f"cannot read the allowed-signers file {path}: {exc.strerror or exc}"
        ) from None


# -- what is signed --------------------------------------------------------------------


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def decision_payload(
    decision: str,
    binding: Mapping[str, Any],
    principal: str,
    role: str | None,
    reason: str,
    at: str,
) -> bytes:
    """The bytes a person signs for a decision: what is decided (the proposal's binding:
    id, module, canonical candidate, baseline hash, evidence hash, impact) and by whom,
    as canonical JSON."""
    doc = {
        "rafael": PAYLOAD_VERSION,
        "decision": decision,
        "binding": dict(binding),
        "principal": principal,
        "role": role,
        "reason": reason,
        "at": at,
    }
    return canonical_json(doc).encode("utf-8")


# -- reading a signature ---------------------------------------------------------------


def _armored_blob(signature: str) -> bytes:
    lines = [ln.strip() for ln in signature.strip().splitlines()]
    if (
        len(lines) < 3
        or lines[0] != "-----BEGIN SSH SIGNATURE-----"
        or lines[-1] != "-----END SSH SIGNATURE-----"
    ):
        raise SignatureError("not an SSH signature (expected -----BEGIN SSH SIGNATURE-----)")
    try:
        return base64.b64decode("".join(lines[1:-1]), validate=True)
    except ValueError:
        raise SignatureError("the SSH signature is not valid base64") from None


def _read_string(blob: bytes, offset: int) -> tuple[bytes, int]:
    if offset + 4 > len(blob):
        raise SignatureError("the SSH signature is truncated")
    (size,) = struct.unpack(">I", blob[offset : offset + 4])
    end = offset + 4 + size
    if end > len(blob):
        raise SignatureError("the SSH signature is truncated")
    return blob[offset + 4 : end], end


def signature_key(signature: str) -> bytes:
    """The signer's public key blob carried in an ``sshsig`` signature (PROTOCOL.sshsig:
    ``"SSHSIG" uint32 version, string publickey, ...``)."""
    blob = _armored_blob(signature)
    if not blob.startswith(b"SSHSIG"):
        raise SignatureError("not an SSH signature (no SSHSIG preamble)")
    key, _ = _read_string(blob, 10)
    return key


def fingerprint(key_blob: bytes) -> str:
    """``SHA256:...`` as ``ssh-keygen -l`` prints it."""
    digest = hashlib.sha256(key_blob).digest()
    return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")


def signature_fingerprint(signature: str) -> str:
    return fingerprint(signature_key(signature))


# -- signing and verifying -------------------------------------------------------------


def _run(args: list[str], data: bytes | None) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(args, input=data, capture_output=True, timeout=_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        raise SignatureError(f"{Path(args[0]).name} did not answer in {_TIMEOUT:.0f}s") from None
    except OSError as exc:
        raise SignatureError(f"cannot run {args[0]}: {exc.strerror or exc}") from None


def _last_line(data: bytes) -> str:
    lines = [ln for ln in data.decode("utf-8", "replace").splitlines() if ln.strip()]
    lines = [ln for ln in lines if not ln.startswith("Signing data on standard input")]
    return lines[-1].strip() if lines else "no message"


def sign(payload: bytes, key: Path) -> str:
    """Sign ``payload`` with the SSH key at ``key`` (a private key, or a public key whose
    private half is in ssh-agent), namespace ``rafael``."""
    key = Path(key).expanduser()
    if not key.is_file():
        raise SignatureError(f"signing key {key}: no such file")
    proc = _run([ssh_keygen(), "-q", "-Y", "sign", "-f", str(key), "-n", NAMESPACE], payload)
    out = proc.stdout.decode("ascii", "replace")
    if proc.returncode != 0 or "BEGIN SSH SIGNATURE" not in out:
        raise SignatureError(f"signing with {key} failed: {_last_line(proc.stderr)}")
    return out.strip() + "\n"


def _verify_time(at: str | None) -> list[str]:
    if not at:
        return []
    try:
        when = datetime.fromisoformat(at)
    except ValueError:
        raise SignatureError(f"bad decision time {at!r}") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return [f"-Overify-time={when.astimezone(timezone.utc):%Y%m%d%H%M%S}Z"]


def verify(
    payload: bytes,
    signature: str,
    allowed_signers: Path,
    principal: str,
    at: str | None = None,
    *,
    all_principals: bool = True,
) -> Signer:
    """Check that ``signature`` over ``payload`` was made, in namespace ``rafael``, by a
    key the allowed-signers file lists for ``principal`` (valid at ``at`` when given, so
    a key retired later with ``valid-before`` still verifies its earlier decisions).

    Returns the key's fingerprint and all of its principals (only ``principal`` when
    ``all_principals`` is false, which saves a second ssh-keygen run);
    :class:`SignatureError` when anything does not hold."""
    require_allowed_signers(allowed_signers)
    fp = signature_fingerprint(signature)
    when = _verify_time(at)
    tool = ssh_keygen()
    with tempfile.TemporaryDirectory(prefix="rafael-sig-") as tmp:
        sig_file = Path(tmp) / "decision.sig"
        sig_file.write_text(signature, encoding="ascii", errors="replace")
        # ssh-keygen refuses lines with options it does not know (rafael-roles).
        signers = for_ssh_keygen(allowed_signers, Path(tmp))
        proc = _run(
            [
                tool,
                "-Y",
                "verify",
                "-f",
                str(signers),
                "-I",
                principal,
                "-n",
                NAMESPACE,
                "-s",
                str(sig_file),
                *when,
            ],
            payload,
        )
        if proc.returncode != 0:
            raise _why_not_verified(
                tool, signers, sig_file, when, fp, principal, proc, allowed_signers
            )
        principals = _principals(tool, signers, sig_file, when) if all_principals else []
    roles = roles_of_key(allowed_signers, signature_key(signature))
    return Signer(fp, tuple(principals) or (principal,), roles)


def _why_not_verified(
    tool: str,
    signers: Path,
    sig_file: Path,
    when: list[str],
    fp: str,
    principal: str,
    proc: subprocess.CompletedProcess[bytes],
    allowed_signers: Path,
) -> SignatureError:
    """The one-line reason a signature did not verify: an unlisted key, another
    principal's key, or a signature over something else."""
    listed = _principals(tool, signers, sig_file, when)
    if not listed:
        return SignatureError(
            f"the signing key {fp} is not listed in {allowed_signers}"
            + (
                " (or not valid at that time: valid-after/valid-before)"
                if when
                else " (or its listing is not valid now: valid-after/valid-before)"
            )
        )
    if principal not in listed:
        return SignatureError(
            f"{principal!r} is not a principal of the signing key {fp} in "
            f"{allowed_signers} (it is listed for: {', '.join(listed)})"
        )
    return SignatureError(
        f"the signature by {fp} does not verify for this decision ({_last_line(proc.stderr)})"
    )


def _principals(tool: str, allowed_signers: Path, sig_file: Path, when: list[str]) -> list[str]:
    proc = _run(
        [tool, "-Y", "find-principals", "-f", str(allowed_signers), "-s", str(sig_file), *when],
        None,
    )
    if proc.returncode != 0:
        return []
    return [ln.strip() for ln in proc.stdout.decode("utf-8", "replace").splitlines() if ln.strip()]


# -- which key signs -------------------------------------------------------------------


def find_signing_key(
    explicit: str | os.PathLike[str] | None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> tuple[Path | None, str]:
    """The key to sign with and where it came from: ``--key``, then
    ``$RAFAEL_SIGNING_KEY``, then git's ``user.signingkey`` when it is an SSH key, then
    ``~/.ssh/id_ed25519``. ``(None, why)`` when there is none."""
    environ = os.environ if env is None else env
    if explicit:
        return Path(explicit).expanduser(), "--key"
    value = environ.get(SIGNING_KEY_ENV, "").strip()
    if value:
        return Path(value).expanduser(), SIGNING_KEY_ENV
    git_key = _git_signing_key(cwd)
    if git_key is not None:
        return git_key, "git config user.signingkey"
    default = Path("~/.ssh/id_ed25519").expanduser()
    if default.is_file():
        return default, "~/.ssh/id_ed25519"
    return None, (
        f"no signing key: pass --key PATH, set {SIGNING_KEY_ENV}, configure git's "
        "user.signingkey with an SSH key, or create ~/.ssh/id_ed25519"
    )


def _git(args: list[str], cwd: Path | None) -> str | None:
    git = shutil.which("git")
    if git is None:
        return None
    try:
        proc = subprocess.run(
            [git, "config", "--get", *args],
            cwd=cwd,
            capture_output=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    value = proc.stdout.decode("utf-8", "replace").strip()
    return value if proc.returncode == 0 and value else None


def _git_signing_key(cwd: Path | None) -> Path | None:
    value = _git(["user.signingkey"], cwd)
    if not value:
        return None
    literal = value[len("key::") :] if value.startswith("key::") else value
    if literal.startswith(("ssh-", "ecdsa-", "sk-")):
        # A literal public key (git's form for keys held by ssh-agent): ssh-keygen signs
        # with the agent when given the public half.
        fd, tmp = tempfile.mkstemp(prefix="rafael-signingkey-", suffix=".pub")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(literal + "\n")
        atexit.register(_unlink, tmp)
        return Path(tmp)
    path = Path(value).expanduser()
    if (_git(["gpg.format"], cwd) or "").lower() == "ssh" or _looks_like_ssh_key(path):
        return path
    return None  # a GPG key id


def _unlink(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def _looks_like_ssh_key(path: Path) -> bool:
    try:
        head = path.read_bytes()[:64]
    except OSError:
        return False
    return head.startswith((b"-----BEGIN OPENSSH PRIVATE KEY", b"ssh-", b"ecdsa-", b"sk-"))
