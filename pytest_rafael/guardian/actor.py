"""Who is acting: the identity recorded as the author of a change and on audit entries.

Order: ``RAFAEL_ACTOR`` (explicit), then the CI system's user (so a CI run is attributed
to the person who triggered it, not to the runner's OS account), then the OS user.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Mapping

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


def resolve_actor(explicit: str | None = None, env: Mapping[str, str] | None = None) -> str:
    """The acting identity: ``explicit`` if given, else the first one the environment names."""
    if explicit and explicit.strip():
        return explicit.strip()
    environ = os.environ if env is None else env
    for var in ("RAFAEL_ACTOR", *CI_ACTOR_VARS):
        value = environ.get(var, "").strip()
        if value:
            return value
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry (some containers) and no USER/LOGNAME variable
        return f"uid:{os.getuid()}" if hasattr(os, "getuid") else "unknown"


def same_actor(a: str, b: str) -> bool:
    """Identities compare case- and whitespace-insensitively, so ``Alice`` cannot approve
    a change authored by ``alice``."""
    return a.strip().casefold() == b.strip().casefold()
