"""Runs planted bugs outside pytest: the embedded Toxiproxy server, one proxy per
target, and the plugin's own ``Chaos.apply`` (the same code a ``@given`` test uses)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from benchmarks.bugs import PlantedBug
from benchmarks.bugs._kit import BaseSystem, Violation, exercise
from pytest_rafael.faults.network import ProxyHandle, ToxiproxyControl
from pytest_rafael.plugin.fixtures import Chaos, ToxiproxyServer
from pytest_rafael.scenario.schedule_model import FaultSchedule
from pytest_rafael.toxiproxy import EmbeddedServer


@dataclass
class Rig:
    bug: PlantedBug
    system: BaseSystem
    chaos: Chaos
    addrs: dict[str, str]

    def triggers(self, schedule: FaultSchedule) -> str | None:
        """The violation's text when ``schedule`` makes the bug show, else ``None``."""
        try:
            exercise(self.system, self.addrs, self.chaos.apply(schedule))
        except Violation as exc:
            return str(exc) or type(exc).__name__
        return None

    def why_invalid(self) -> str | None:
        """Why the bug cannot be counted, if it cannot: it must stay quiet without faults
        and show under its own minimal schedule. A few bugs race real time (a request
        sliced 2 ms apart, a 0.5 s deadline): on a loaded machine one try can miss, so
        the schedule gets three."""
        noise = self.triggers(FaultSchedule())
        if noise is not None:
            return f"breaks without any fault: {noise}"
        if not any(self.triggers(self.bug.minimal) is not None for _ in range(3)):
            return "its MINIMAL schedule does not trigger it"
        return None

    def exercise(self, schedule: FaultSchedule) -> None:
        exercise(self.system, self.addrs, self.chaos.apply(schedule))


@contextlib.contextmanager
def server() -> Iterator[ToxiproxyServer]:
    with EmbeddedServer() as embedded:
        yield ToxiproxyServer(embedded.url, True, ToxiproxyControl(embedded.url))


@contextlib.contextmanager
def rig(bug: PlantedBug, toxiproxy: ToxiproxyServer, failures_dir: Any = None) -> Iterator[Rig]:
    system: BaseSystem = bug.module.System()
    proxies: dict[str, ProxyHandle] = {}
    try:
        for target, upstream in system.upstreams().items():
            proxies[target] = toxiproxy.control.create_proxy(target, upstream)
        chaos = Chaos(
            active=True,
            scenario=None,
            iteration=None,
            iterations=None,
            _metrics={},
            _proxies=proxies,
            _server=lambda: toxiproxy,
            _failures_dir=failures_dir,
        )
        addrs = {name: f"{p.host}:{p.port}" for name, p in proxies.items()}
        yield Rig(bug, system, chaos, addrs)
    finally:
        for handle in proxies.values():
            with contextlib.suppress(Exception):
                toxiproxy.control.delete_proxy(handle)
        system.close()
