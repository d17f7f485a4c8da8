"""Run groups: the shards of one CI run (a matrix of jobs, each maybe with pytest-xdist
inside) record their runs under one id, and ``rafael report --run-group ID`` merges them
into one report, gate and ``results.json``."""

from __future__ import annotations

from collections.abc import Mapping

# The run id of the CI systems we know, first match wins. Each is the same in every job
# of one pipeline run, so the shards agree on it without being told.
CI_RUN_VARIABLES: tuple[str, ...] = (
    "GITHUB_RUN_ID",  # GitHub Actions
    "CI_PIPELINE_ID",  # GitLab CI
    "CIRCLE_WORKFLOW_ID",  # CircleCI
    "BUILDKITE_BUILD_ID",  # Buildkite
    "BUILD_BUILDID",  # Azure Pipelines
    "TRAVIS_BUILD_ID",  # Travis CI
    "BUILD_TAG",  # Jenkins
)


def ci_run_group(environ: Mapping[str, str]) -> tuple[str, str] | None:
    """``(source, id)`` from the first known CI variable that is set, else None."""
    for name in CI_RUN_VARIABLES:
        value = environ.get(name, "").strip()
        if value:
            return f"environment variable {name}", value
    return None
