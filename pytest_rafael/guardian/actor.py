# ruff: noqa: RUF001, RUF002 - this module is about look-alike letters
"""Who is acting: the identity recorded as the author of a change and on audit entries,
and how recorded names are checked and compared.

Order: ``RAFAEL_ACTOR`` (explicit), then the CI system's user (so a CI run is attributed
to the person who triggered it, not to the runner's OS account), then the OS user.

Names are *labels*, not proof of identity: a decision is attributed to the SSH key that
signed it (see :mod:`pytest_rafael.guardian.signatures`). Names still matter where no key
is involved (the author of a proposal filed by CI), so every recorded name is checked:

* control and format characters (line breaks, escape sequences, zero-width and
  bidirectional marks) are refused;
* a name mixing scripts (``оps`` with a Cyrillic ``о``) is refused;
* names compare by a *skeleton*: NFKC-normalised, case-folded, and with the Cyrillic and
  Greek letters that look like Latin ones (and ``0``/``1``) mapped to them, so ``Alice``,
  ``ａｌｉｃｅ`` and ``аlice`` are one person.
"""

from __future__ import annotations

import getpass
import os
import unicodedata
from collections.abc import Mapping

from pytest_rafael.errors import RafaelError

# Environment variables CI systems set to the user who triggered the pipeline.
CI_ACTOR_VARS: tuple[str, ...] = (
    "GITHUB_ACTOR",  # GitHub Actions
    "GITLAB_USER_LOGIN",  # GitLab CI
    "BUILDKITE_BUILD_CREATOR_EMAIL",  # Buildkite (an identifier, kept as given)
    "CIRCLE_USERNAME",  # CircleCI
    "BITBUCKET_STEP_TRIGGERER_UUID",  # Bitbucket Pipelines
    "BUILD_REQUESTEDFOR",  # Azure Pipelines
    "TRAVIS_COMMIT_AUTHOR",
    "DRONE_COMMIT_AUTHOR",
    "CHANGE_AUTHOR",  # Jenkins multibranch
)

# Letters of other scripts that render like a Latin letter (after case folding), from
# Unicode's confusables data (UTS #39), plus the digits most often swapped for letters.
_CONFUSABLES: dict[str, str] = {
    # Cyrillic
    "а": "a",
    "в": "b",
    "ԁ": "d",
    "е": "e",
    "ё": "e",
    "ѐ": "e",
    "һ": "h",
    "і": "i",
    "ї": "i",
    "ӏ": "l",
    "ј": "j",
    "к": "k",
    "м": "m",
    "н": "h",
    "о": "o",
    "р": "p",
    "ԛ": "q",
    "г": "r",
    "ѕ": "s",
    "с": "c",
    "т": "t",
    "у": "y",
    "ү": "y",
    "ѵ": "v",
    "ԝ": "w",
    "х": "x",
    "ӡ": "3",
    "ь": "b",
    # Greek
    "α": "a",
    "β": "b",
    "ε": "e",
    "η": "n",
    "ι": "i",
    "κ": "k",
    "ν": "v",
    "ο": "o",
    "ρ": "p",
    "τ": "t",
    "υ": "u",
    "χ": "x",
    "γ": "y",
    "ω": "w",
    "ϲ": "c",
    "ϳ": "j",
    # Latin look-alikes
    "ı": "i",
    "ȷ": "j",
    "ɑ": "a",
    "ɡ": "g",
    "ɩ": "i",
    "ʟ": "l",
    "ᴏ": "o",
    # digits
    "0": "o",
    "1": "l",
}
# Scripts that are written together and do not count as mixing.
_SCRIPT_GROUPS = {"HIRAGANA": "CJK", "KATAKANA": "CJK", "CJK": "CJK", "HANGUL": "CJK"}


class ActorError(RafaelError, ValueError):
    """A name that cannot be recorded (control characters, mixed scripts, empty)."""


def _script(ch: str) -> str | None:
    if not ch.isalpha():
        return None
    try:
        first = unicodedata.name(ch).split(" ", 1)[0]
    except ValueError:
        return "UNKNOWN"
    return _SCRIPT_GROUPS.get(first, first)


def check_name(name: str, what: str = "name") -> str:
    """``name`` stripped, or :class:`ActorError` when it cannot be recorded."""
    if not isinstance(name, str) or not name.strip():
        raise ActorError(f"{what} is empty")
    for ch in name:
        if unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"):
            raise ActorError(
                f"{what} {name!r} holds a control or invisible character (U+{ord(ch):04X})"
            )
    scripts = {s for s in map(_script, unicodedata.normalize("NFKC", name)) if s}
    if len(scripts) > 1:
        raise ActorError(
            f"{what} {name!r} mixes scripts ({', '.join(sorted(scripts)).lower()}); "
            "look-alike names are refused"
        )
    return name.strip()


def skeleton(name: str) -> str:
    """What a name looks like: NFKC, case-folded, confusable letters mapped to Latin."""
    text = unicodedata.normalize("NFKC", name).strip().casefold()
    text = "".join(_CONFUSABLES.get(ch, ch) for ch in text)
    return unicodedata.normalize("NFKC", text)


def resolve_actor(explicit: str | None = None, env: Mapping[str, str] | None = None) -> str:
    """The acting identity: ``explicit`` if given, else the first one the environment
    names. :class:`ActorError` when that name cannot be recorded."""
    if explicit and explicit.strip():
        return check_name(explicit, "actor")
    environ = os.environ if env is None else env
    for var in ("RAFAEL_ACTOR", *CI_ACTOR_VARS):
        value = environ.get(var, "")
        if value.strip():
            return check_name(value, var)
    try:
        return check_name(getpass.getuser(), "OS user")
    except ActorError:
        raise
    except Exception:  # no passwd entry (some containers) and no USER/LOGNAME variable
        return f"uid:{os.getuid()}" if hasattr(os, "getuid") else "unknown"


def same_actor(a: str, b: str) -> bool:
    """Identities compare by skeleton, so ``Alice``, ``ALICE`` and ``аlice`` (Cyrillic
    ``а``) cannot approve a change authored by ``alice``."""
    return skeleton(a) == skeleton(b)
