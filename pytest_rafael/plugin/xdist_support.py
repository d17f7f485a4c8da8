"""pytest-xdist support: one seed for all workers, and every iteration of a (test,
scenario) pair on the same worker, in order (evolution learns from iteration to
iteration, so its iterations cannot be spread out).

Registered only when xdist is installed; its hooks are xdist's documented ones.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from pytest_rafael.plugin.session import RafaelSession

# The id of the rafael parameter is "<scenario>-it<index>", or "<scenario>-nofault" for
# the pair's reference run (see iteration.ChaosCase).
_ITERATION_ID = re.compile(r"(?P<scenario>[a-z0-9_]+)-(?:it\d+|nofault)(?=[\]\-])")


def chaos_scope(nodeid: str) -> str:
    """The scheduling scope of a node id: the (test, scenario) pair for a chaos
    iteration, the node id itself for anything else."""
    if "[" not in nodeid:
        return nodeid
    head, _, params = nodeid.partition("[")
    scoped = _ITERATION_ID.sub(lambda m: f"{m['scenario']}-it*", params, count=1)
    return f"{head}[{scoped}"


def worker_id(config: pytest.Config) -> str | None:
    """This process's xdist worker id ("gw0", ...), None when it is no worker. Read from
    xdist's ``workerinput``, never from ``PYTEST_XDIST_WORKER``: a pytest started from
    inside a worker's test inherits that variable without being a worker."""
    workerinput = getattr(config, "workerinput", None)
    return None if workerinput is None else str(workerinput["workerid"])


class XdistSupport:
    def __init__(self, session: RafaelSession) -> None:
        self.session = session

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        node.workerinput["rafael_seed"] = self.session.settings.seed

    @pytest.hookimpl(optionalhook=True, tryfirst=True)
    def pytest_xdist_make_scheduler(self, config: pytest.Config, log: Any) -> Any:
        if not self.session.settings.chaos or config.getvalue("dist") not in ("load", "worksteal"):
            return None  # loadscope/loadfile/loadgroup already keep a test's items together
        from xdist.scheduler import LoadScopeScheduling

        class ChaosScheduling(LoadScopeScheduling):  # type: ignore[misc]
            """``load``, except that a chaos test's iterations are one unit of work."""

            def _split_scope(self, nodeid: str) -> str:
                return chaos_scope(nodeid)

        return ChaosScheduling(config, log)
