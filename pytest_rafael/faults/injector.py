"""Apply a scenario's faults around one test call, on time, and always revert them.

Faults with ``start_s == 0`` are applied before the test function runs; later ones, the
end of any ``duration_s`` and the windows of a repeating fault (``every_s``) are driven
by one timer thread. :meth:`FaultInjector.stop`
cancels what has not started and reverts everything that has, in reverse order, even if
some reverts fail (the first failure is raised after all were attempted).
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pytest_rafael.errors import RafaelError
from pytest_rafael.faults.network import ProxyHandle, ToxiproxyControl
from pytest_rafael.results import FaultRecord
from pytest_rafael.scenario.model import INPROCESS_KINDS, FaultSpec, Scenario


class FaultError(RafaelError):
    """A fault cannot be applied; one line naming the scenario and the fault."""


class Revertible(Protocol):
    def revert(self) -> dict[str, Any] | None: ...


@dataclass
class _Applied:
    spec: FaultSpec
    index: int
    target: str
    handle: Revertible
    applied_at_s: float
    reverted_at_s: float | None = None
    observed: dict[str, Any] = field(default_factory=dict)


class _Toxic:
    def __init__(
        self, control: ToxiproxyControl, proxy: ProxyHandle, name: str, spec: FaultSpec
    ) -> None:
        self.control, self.proxy, self.name = control, proxy, name
        control.add_toxic(
            proxy,
            name=name,
            type=str(spec.type),
            stream=spec.stream,
            toxicity=spec.toxicity,
            attributes=dict(spec.attributes),
        )

    def revert(self) -> None:
        self.control.remove_toxic(self.proxy, self.name)


class _Down:
    def __init__(self, control: ToxiproxyControl, proxy: ProxyHandle) -> None:
        self.control, self.proxy = control, proxy
        control.set_enabled(proxy, False)

    def revert(self) -> None:
        self.control.set_enabled(self.proxy, True)


class _Stress:
    def __init__(self, spec: FaultSpec, limits: Any, workdir: Path | None) -> None:
        from pytest_rafael.faults.stress import start_stressor

        self.stressor = start_stressor(str(spec.type), dict(spec.attributes), limits, workdir)

    def revert(self) -> dict[str, Any]:
        return dict(self.stressor.stop())


def network_fault(
    control: ToxiproxyControl, proxy: ProxyHandle, spec: FaultSpec, name: str
) -> Revertible:
    """A ``toxic`` (named ``name``) or a ``down`` put on ``proxy`` now."""
    if spec.kind == "down":
        return _Down(control, proxy)
    return _Toxic(control, proxy, name, spec)


def _flood(spec: FaultSpec, target: str, proxy: ProxyHandle | None) -> Revertible:
    from pytest_rafael.faults.flood import FloodAddress, FloodError, parse_address, start_flood

    try:
        address = (
            FloodAddress(proxy.host, proxy.port)
            if proxy is not None
            else parse_address(spec.target)
        )
        # The child also stops by itself a little after the fault's end, should the
        # parent be frozen; the injector stops it on time in any case.
        max_s = spec.duration_s + 5.0 if spec.duration_s is not None else 3600.0
        return start_flood(address, spec.attributes, target=target, max_s=max_s)
    except FloodError as exc:
        raise FaultError(f"{spec.source}: {exc}") from None


def _in_process(spec: FaultSpec) -> Revertible:
    from pytest_rafael.faults.inprocess import InProcessError, apply

    try:
        handle: Revertible = apply(spec.kind, spec.target, spec.attributes, spec.toxicity)
    except InProcessError as exc:
        raise FaultError(f"{spec.source}: {spec.kind} fault: {exc}") from None
    return handle


# A repeating fault stops being scheduled after this long: far beyond any test call, and
# the events are generated lazily, so the bound costs nothing.
_HORIZON_S = 24 * 3600.0


def _events(index: int, spec: FaultSpec) -> Iterator[tuple[float, bool, int]]:
    """(at, is_apply, fault index) for one fault, in time order; a fault with ``every_s``
    comes back each period until the horizon."""
    at = spec.start_s
    while True:
        yield (at, True, index)
        if spec.duration_s is None:
            return
        yield (at + spec.duration_s, False, index)
        if spec.every_s is None:
            return
        at += spec.every_s
        if at > _HORIZON_S:
            return


def resolve_targets(scenario: Scenario, proxies: Mapping[str, ProxyHandle]) -> None:
    """Fail early, with a clear message, when a network fault has nothing to hit."""
    for spec in scenario.faults:
        if not spec.aims_at_proxies:
            continue
        if spec.target == "*":
            if not proxies:
                raise FaultError(
                    f"scenario {scenario.name!r} injects network faults into every proxy "
                    f"of the test, but the test created none with chaos_proxy(name, upstream)"
                )
        elif spec.target not in proxies:
            have = ", ".join(sorted(proxies)) or "none"
            raise FaultError(
                f"scenario {scenario.name!r} targets proxy {spec.target!r} ({spec.source}) "
                f"but the test created {have}; create it with chaos_proxy({spec.target!r}, "
                f"upstream) or remap it with the marker's targets={{...}}"
            )


class FaultInjector:
    """Drives one scenario's faults during one test call.

    A fault is *active* from its ``start_s`` to the end of its ``duration_s`` (or of the
    call). While it is active it applies to every matching proxy, including proxies the
    test creates during the call (``chaos_proxy`` calls :meth:`add_proxy`).
    """

    def __init__(
        self,
        scenario: Scenario,
        proxies: Mapping[str, ProxyHandle],
        control: ToxiproxyControl | None,
        stress_limits: Any,
        workdir: Path | None = None,
        apply_custom: Callable[[FaultSpec], Revertible | None] | None = None,
    ) -> None:
        self.scenario = scenario
        self.proxies = dict(proxies)
        self.control = control
        self.stress_limits = stress_limits
        self.workdir = workdir
        self.apply_custom = apply_custom
        self._applied: list[_Applied] = []
        self._active: set[int] = set()
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._timer: threading.Thread | None = None
        self._timer_error: BaseException | None = None
        self._t0 = 0.0

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        """Apply the faults that start at once; schedule the rest. If an immediate fault
        fails, what was applied is reverted before the error propagates. A scenario with
        steps arms nothing: its state machine calls :meth:`step` at each of them."""
        self._t0 = time.monotonic()
        if self.scenario.steps:
            return
        # At equal times, reverts go first (False < True), so a repeating fault lifts
        # before its next window starts.
        events = heapq.merge(
            *(_events(index, spec) for index, spec in enumerate(self.scenario.faults))
        )
        first = next(events, None)
        try:
            while first is not None and first[0] <= 0 and first[1]:
                self._activate(first[2])
                first = next(events, None)
        except BaseException:
            self.stop()
            raise
        if first is not None:
            self._timer = threading.Thread(
                target=self._run_timer,
                args=(itertools.chain([first], events),),
                name="rafael-fault-timer",
                daemon=True,
            )
            self._timer.start()

    def add_proxy(self, name: str, handle: ProxyHandle) -> None:
        """A proxy created during the call: the active faults aimed at it apply now."""
        with self._lock:
            self.proxies[name] = handle
            if self._stopping.is_set():
                return
            for index in sorted(self._active):
                spec = self.scenario.faults[index]
                if spec.aims_at_proxies and spec.target in ("*", name):
                    self._apply(index, name)

    def stop(self) -> tuple[FaultRecord, ...]:
        """Cancel pending faults and revert every applied one; return what happened."""
        self._stopping.set()
        if self._timer is not None:
            self._timer.join()
        first_error: BaseException | None = self._timer_error
        with self._lock:
            self._active.clear()
            for applied in reversed(self._applied):
                if applied.reverted_at_s is None:
                    try:
                        self._revert(applied)
                    except BaseException as exc:  # keep reverting the others
                        first_error = first_error or exc
            records = tuple(self._record(a) for a in self._applied)
        if first_error is not None:
            raise first_error
        return records

    def step(self, index: int, in_place: bool) -> None:
        """Put the scenario's fault ``index`` in place, or take it away: a replayed
        stateful failure's ``inject`` and ``revert`` steps."""
        if self._stopping.is_set():  # the call ended: nothing may be left in place
            raise FaultError(f"scenario {self.scenario.name!r}: a step after the test call")
        if in_place:
            self._activate(index)
        else:
            self._deactivate(index)

    def missing_targets(self) -> str | None:
        """Why a network fault of the scenario had nothing to hit, or None."""
        try:
            resolve_targets(self.scenario, self.proxies)
        except FaultError as exc:
            return str(exc)
        return None

    @property
    def records(self) -> tuple[FaultRecord, ...]:
        with self._lock:
            return tuple(self._record(a) for a in self._applied)

    # -- internals ----------------------------------------------------------------------

    def _run_timer(self, events: Iterator[tuple[float, bool, int]]) -> None:
        try:
            for at, is_apply, index in events:
                delay = self._t0 + at - time.monotonic()
                if (delay > 0 and self._stopping.wait(delay)) or self._stopping.is_set():
                    return
                if is_apply:
                    self._activate(index)
                else:
                    self._deactivate(index)
        except BaseException as exc:  # surfaced by stop(); the test sees the fault missing
            self._timer_error = exc

    def _activate(self, index: int) -> None:
        spec = self.scenario.faults[index]
        with self._lock:
            if self._stopping.is_set() and self._timer is not None:
                return
            self._active.add(index)
            if spec.aims_at_proxies:
                targets = (
                    sorted(self.proxies)
                    if spec.target == "*"
                    else ([spec.target] if spec.target in self.proxies else [])
                )
            elif spec.kind in ("flood", "raise", "delay"):
                targets = [spec.target]
            else:
                targets = [str(spec.type or spec.kind)]
            for target in targets:
                self._apply(index, target)

    def _deactivate(self, index: int) -> None:
        with self._lock:
            self._active.discard(index)
            for applied in self._applied:
                if applied.index == index and applied.reverted_at_s is None:
                    self._revert(applied)

    def _apply(self, index: int, target: str) -> None:
        spec = self.scenario.faults[index]
        handle = self._make(index, spec, target)
        self._applied.append(
            _Applied(spec, index, target, handle, round(time.monotonic() - self._t0, 6))
        )

    def _make(self, index: int, spec: FaultSpec, target: str) -> Revertible:
        if spec.kind in ("toxic", "down"):
            if self.control is None:
                raise FaultError("network faults need a Toxiproxy server; none is running")
            name = f"rafael_{index}_{spec.type}_{spec.stream}"  # unique per fault
            return network_fault(self.control, self.proxies[target], spec, name)
        if spec.kind == "stress":
            return _Stress(spec, self.stress_limits, self.workdir)
        if spec.kind == "flood":
            return _flood(spec, target, self.proxies.get(target) if spec.aims_at_proxies else None)
        if spec.kind in INPROCESS_KINDS:
            return _in_process(spec)
        handle = self.apply_custom(spec) if self.apply_custom else None
        if handle is None:
            raise FaultError(
                f"scenario {self.scenario.name!r}: no plugin applies faults of kind "
                f"{spec.kind!r} ({spec.source}); implement the pytest_rafael_apply_fault hook"
            )
        return handle

    def _revert(self, applied: _Applied) -> None:
        applied.reverted_at_s = round(time.monotonic() - self._t0, 6)
        observed = applied.handle.revert()
        if observed:
            applied.observed.update(observed)

    def _record(self, applied: _Applied) -> FaultRecord:
        spec = applied.spec
        network = spec.kind in ("toxic", "down", "raise", "delay")
        return FaultRecord(
            kind=spec.kind,
            target=applied.target,
            type=str(spec.type or spec.kind),
            attributes=dict(spec.attributes),
            stream=spec.stream if spec.kind == "toxic" else None,
            toxicity=spec.toxicity if network else None,
            applied_at_s=applied.applied_at_s,
            reverted_at_s=applied.reverted_at_s,
            observed=dict(applied.observed),
        )

    def fault_window(self) -> tuple[float, float] | None:
        """(first applied, last reverted) offsets into the call, for recovery timing."""
        with self._lock:
            if not self._applied:
                return None
            start = min(a.applied_at_s for a in self._applied)
            ends = [a.reverted_at_s for a in self._applied if a.reverted_at_s is not None]
            return (start, max(ends) if ends else start)
