"""The server's state and every API operation on it, behind one lock.

HTTP parsing lives in ``api.py``; this module only takes decoded JSON values and answers
with JSON-ready values or raises :class:`~pytest_rafael.toxiproxy.errors.ApiError`.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass
from typing import Any

from pytest_rafael.toxiproxy import errors
from pytest_rafael.toxiproxy.address import AddressError, resolve
from pytest_rafael.toxiproxy.proxy import Proxy
from pytest_rafael.toxiproxy.toxics import DOWNSTREAM, UPSTREAM, parse_toxic, update_toxic

_DEFAULT_LISTEN = "127.0.0.1:0"


def _proxy_fields(body: object, defaults: dict[str, Any]) -> dict[str, Any]:
    """Decode proxy JSON the way Go decodes into its struct: typed fields, others ignored."""
    if not isinstance(body, dict):
        found = "array" if isinstance(body, list) else type(body).__name__
        raise errors.BAD_REQUEST_BODY.joined(f"cannot unmarshal {found} into a proxy object")
    fields = dict(defaults)
    kinds: tuple[tuple[str, type, str], ...] = (
        ("name", str, "string"),
        ("listen", str, "string"),
        ("upstream", str, "string"),
        ("enabled", bool, "boolean"),
    )
    for key, kind, kind_name in kinds:
        if key in body and body[key] is not None:
            if not isinstance(body[key], kind):
                raise errors.BAD_REQUEST_BODY.joined(f"field {key!r} must be a {kind_name}")
            fields[key] = body[key]
    return fields


@dataclass(frozen=True)
class PopulateResult:
    """What ``POST /populate`` did: the proxies in input order, and the error that
    stopped it (None when every entry went through)."""

    proxies: tuple[dict[str, Any], ...]
    error: errors.ApiError | None


def _differs(proxy: Proxy, listen: str, upstream: str) -> bool:
    """Go's ``Proxy.Differs``: the new listen address is resolved before the comparison
    ("localhost:7070" equals "127.0.0.1:7070"); a bad one is a 500, nothing changed."""
    try:
        resolved = resolve(listen)
    except AddressError as exc:
        raise errors.ApiError(str(exc), 500) from None
    return proxy.listen != str(resolved) or proxy.upstream != upstream


def _json_kind(value: object) -> str:
    """Go's name for a JSON value's kind in an unmarshal error."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, dict):
        return "object"
    return "string" if isinstance(value, str) else "array"


class ProxyCollection:
    """All proxies of one server."""

    def __init__(self, seed: int | None = None) -> None:
        self._lock = threading.RLock()
        self._proxies: dict[str, Proxy] = {}
        self._rng = random.Random(seed)
        self._rng_lock = threading.Lock()

    # -- proxies -------------------------------------------------------------------------

    def _get(self, name: str) -> Proxy:
        proxy = self._proxies.get(name)
        if proxy is None:
            raise errors.PROXY_NOT_FOUND
        return proxy

    def all(self) -> dict[str, Any]:
        with self._lock:
            return {name: proxy.to_json() for name, proxy in self._proxies.items()}

    def show(self, name: str) -> dict[str, Any]:
        with self._lock:
            return self._get(name).to_json()

    def create(self, body: object) -> dict[str, Any]:
        fields = _proxy_fields(body, {"name": "", "listen": "", "upstream": "", "enabled": True})
        if not fields["name"]:
            raise errors.MISSING_FIELD.joined("name")
        if not fields["upstream"]:
            raise errors.MISSING_FIELD.joined("upstream")
        with self._lock:
            if fields["name"] in self._proxies:
                raise errors.PROXY_ALREADY_EXISTS
            proxy = self._new_proxy(fields)
            if fields["enabled"]:
                proxy.start()
            self._proxies[proxy.name] = proxy
            return proxy.to_json()

    def _new_proxy(self, fields: dict[str, Any]) -> Proxy:
        return Proxy(
            fields["name"],
            fields["listen"] or _DEFAULT_LISTEN,
            fields["upstream"],
            self._rng,
            self._rng_lock,
        )

    def update(self, name: str, body: object) -> dict[str, Any]:
        """PATCH a proxy as Toxiproxy does: the new address is resolved (and so validated)
        before anything stops; an unchanged address keeps the listener, its connections
        and toxics; a failed restart leaves the proxy disabled with the new address."""
        with self._lock:
            proxy = self._get(name)
            fields = _proxy_fields(
                body,
                {"listen": proxy.listen, "upstream": proxy.upstream, "enabled": proxy.enabled},
            )
            listen = fields["listen"] or _DEFAULT_LISTEN
            if _differs(proxy, listen, fields["upstream"]):
                proxy.stop()
                proxy.listen, proxy.upstream = listen, fields["upstream"]
            if fields["enabled"] and not proxy.enabled:
                proxy.start()
            elif not fields["enabled"] and proxy.enabled:
                proxy.stop()
            return proxy.to_json()

    def delete(self, name: str) -> None:
        with self._lock:
            proxy = self._get(name)
            del self._proxies[name]
            proxy.stop()
            proxy.close_connections()

    def populate(self, body: object) -> list[dict[str, Any]]:
        """``populate_partial``, raising its error (for a config file at start-up)."""
        result = self.populate_partial(body)
        if result.error is not None:
            raise result.error
        return list(result.proxies)

    def populate_partial(self, body: object) -> PopulateResult:
        """Create or replace proxies from a list, in order, as Toxiproxy does: the list is
        checked for names and upstreams first; then an entry whose resolved listen address
        and upstream match the existing proxy keeps it (toxics, connections); a later
        entry with an earlier one's name replaces it. The first failure stops the run and
        comes back with the proxies done so far."""
        if body is None:  # Go decodes null into an empty list
            body = []
        if not isinstance(body, list):
            raise errors.BAD_REQUEST_BODY.joined(
                f"json: cannot unmarshal {_json_kind(body)} into Go value of type "
                '[]struct { toxiproxy.Proxy; Enabled *bool "json:\\"enabled\\"" }'
            )
        wanted: list[dict[str, Any]] = []
        for index, item in enumerate(body, start=1):
            fields = _proxy_fields(
                item, {"name": "", "listen": "", "upstream": "", "enabled": True}
            )
            if not fields["name"]:
                raise errors.MISSING_FIELD.joined(f"name at proxy {index}")
            if not fields["upstream"]:
                raise errors.MISSING_FIELD.joined(f"upstream at proxy {index}")
            wanted.append(fields)
        done: list[Proxy] = []
        with self._lock:
            for fields in wanted:
                try:
                    done.append(self._add_or_replace(fields))
                except errors.ApiError as exc:
                    return PopulateResult(tuple(p.to_json() for p in done), exc)
            # Serialised at the end, as Go does: a proxy replaced later in the same list
            # shows as stopped.
            return PopulateResult(tuple(p.to_json() for p in done), None)

    def _add_or_replace(self, fields: dict[str, Any]) -> Proxy:
        existing = self._proxies.get(fields["name"])
        if existing is not None:
            listen = fields["listen"] or _DEFAULT_LISTEN
            if not _differs(existing, listen, fields["upstream"]):
                return existing
            existing.stop()  # stays listed, stopped, if the new one cannot start
        proxy = self._new_proxy(fields)
        if fields["enabled"]:
            proxy.start()
        self._proxies[proxy.name] = proxy
        return proxy

    def reset(self) -> None:
        """Enable every proxy and remove every toxic."""
        with self._lock:
            for proxy in self._proxies.values():
                proxy.start()
                proxy.set_toxics([])

    def clear(self) -> None:
        """Remove every proxy, closing listeners and connections (server shutdown)."""
        with self._lock:
            proxies = list(self._proxies.values())
            self._proxies.clear()
            for proxy in proxies:
                proxy.stop()
                proxy.close_connections()
        # Synchronous for the caller (the plugin's teardown): sockets are closed on return.
        for proxy in proxies:
            proxy.wait_closed(timeout=2.0)

    # -- toxics --------------------------------------------------------------------------

    def toxics(self, proxy_name: str) -> list[dict[str, Any]]:
        with self._lock:
            return self._get(proxy_name).to_json()["toxics"]  # type: ignore[no-any-return]

    def toxic(self, proxy_name: str, toxic_name: str) -> dict[str, Any]:
        with self._lock:
            return self._get(proxy_name).find_toxic(toxic_name).to_json()

    def add_toxic(self, proxy_name: str, body: object) -> dict[str, Any]:
        with self._lock:
            proxy = self._get(proxy_name)
            spec = parse_toxic(body)
            if any(t.name == spec.name for t in proxy.toxics):
                raise errors.TOXIC_ALREADY_EXISTS
            proxy.set_toxics([*proxy.toxics, spec])
            return spec.to_json()

    def update_toxic(self, proxy_name: str, toxic_name: str, body: object) -> dict[str, Any]:
        with self._lock:
            proxy = self._get(proxy_name)
            current = proxy.find_toxic(toxic_name)
            updated = update_toxic(current, body)
            proxy.set_toxics([updated if t is current else t for t in proxy.toxics])
            return updated.to_json()

    def remove_toxic(self, proxy_name: str, toxic_name: str) -> None:
        with self._lock:
            proxy = self._get(proxy_name)
            current = proxy.find_toxic(toxic_name)
            proxy.set_toxics([t for t in proxy.toxics if t is not current])

    # -- metrics -------------------------------------------------------------------------

    def metrics(self) -> str:
        """Prometheus text exposition: bytes per proxy and direction, connections."""
        with self._lock:
            proxies = list(self._proxies.values())
        lines: list[str] = []
        families = (
            (
                "toxiproxy_proxy_received_bytes_total",
                "counter",
                "The total bytes received from the source of the link.",
            ),
            (
                "toxiproxy_proxy_sent_bytes_total",
                "counter",
                "The total bytes sent to the destination of the link.",
            ),
        )
        counts = {proxy.name: proxy.byte_counts() for proxy in proxies}
        for index, (metric, kind, help_text) in enumerate(families):
            lines += [f"# HELP {metric} {help_text}", f"# TYPE {metric} {kind}"]
            for proxy in proxies:
                values = counts[proxy.name][index]
                for direction, label in ((UPSTREAM, "upstream"), (DOWNSTREAM, "downstream")):
                    lines.append(f"{metric}{{{_labels(proxy, label)}}} {values[direction]}")
        lines += [
            "# HELP toxiproxy_proxy_connections_total Client connections accepted.",
            "# TYPE toxiproxy_proxy_connections_total counter",
        ]
        lines += [
            f"toxiproxy_proxy_connections_total{{{_labels(p)}}} {p.connections_total}"
            for p in proxies
        ]
        lines += [
            "# HELP toxiproxy_proxy_active_connections Client connections open now.",
            "# TYPE toxiproxy_proxy_active_connections gauge",
        ]
        lines += [
            f"toxiproxy_proxy_active_connections{{{_labels(p)}}} {len(p.open_connections())}"
            for p in proxies
        ]
        return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(proxy: Proxy, direction: str | None = None) -> str:
    pairs = [] if direction is None else [("direction", direction)]
    pairs += [("listener", proxy.listen), ("proxy", proxy.name), ("upstream", proxy.upstream)]
    return ",".join(f'{key}="{_escape(value)}"' for key, value in pairs)
