"""Notifications about proposals and decisions.

The built-in :class:`WebhookNotifier` POSTs each event as JSON to a configured URL. A
notification is a courtesy, not part of the decision: a slow or failing endpoint is cut
off by the timeout and logged, and never raises into the run.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pytest_rafael import __version__

if TYPE_CHECKING:
    from pytest_rafael.guardian.audit import AuditEntry
    from pytest_rafael.guardian.proposals import Proposal

log = logging.getLogger("pytest_rafael.guardian")

Notifier = Callable[[dict[str, Any]], None]


class WebhookNotifier:
    """``notifier(event)`` POSTs ``event`` as JSON to ``url`` within ``timeout`` seconds."""

    def __init__(self, url: str, timeout: float = 5.0) -> None:
        self.url = url
        self.timeout = timeout
        self.failures = 0

    def __call__(self, event: Mapping[str, Any]) -> None:
        body = json.dumps(dict(event), sort_keys=True, default=str).encode("utf-8")
        request = urllib.request.Request(
            self.url,
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                "User-Agent": f"pytest-rafael/{__version__}",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                response.read(65536)
        except urllib.error.HTTPError as exc:
            self.failures += 1
            log.warning(
                "rafael webhook %s answered HTTP %s for %s",
                self.url,
                exc.code,
                event.get("event_type"),
            )
        except Exception as exc:  # timeouts, refused connections, DNS, TLS: all non-fatal
            self.failures += 1
            log.warning(
                "rafael webhook %s failed for %s: %s", self.url, event.get("event_type"), exc
            )


def fan_out(notifiers: Sequence[Notifier], event: dict[str, Any]) -> None:
    """Call every notifier; one that raises is logged and the others still run."""
    for notify in notifiers:
        try:
            notify(dict(event))
        except Exception:
            log.exception("rafael notifier %r failed for %s", notify, event.get("event_type"))


def proposal_event(e: AuditEntry, p: Proposal) -> dict[str, Any]:
    """What notifiers and ``pytest_rafael_proposal`` get for audit entry ``e`` about
    proposal ``p``."""
    return {
        "event_type": e.event_type,
        "change_id": p.id,
        "module": p.module,
        "impact": p.impact,
        "status": p.status,
        "actor": e.actor,
        "details": dict(e.details),
        "audit_id": e.id,
        "timestamp": e.timestamp,
    }
