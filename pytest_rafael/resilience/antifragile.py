"""``@antifragile("<module>")``: apply the module's genome to a sync or async callable."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from pytest_rafael.resilience.pipeline import bare_async, bare_sync
from pytest_rafael.resilience.runtime import UNLOADED, slot

F = TypeVar("F", bound=Callable[..., Any])


def antifragile(module: str, *, idempotent: bool | None = None) -> Callable[[F], F]:
    """Decorate a function so each call runs through ``module``'s genes.

    The genome is looked up per call (one attribute read), so an adopted genome loaded
    later or a candidate swapped in by the plugin applies from the next call on. A module
    the genome file does not name runs its callable bare (still counted).

    ``idempotent=False`` declares that a call must never be re-sent once its request may
    have reached the server: whatever the genome says, it is retried only after errors
    that prove nothing was sent (see :mod:`pytest_rafael.resilience.delivery`), and
    evolution never proposes more. ``idempotent=True`` lets the default retry gene retry
    every error.
    """
    if not isinstance(module, str) or not module:
        raise TypeError(f"antifragile() needs a module name string, got {module!r}")
    if idempotent is not None and not isinstance(idempotent, bool):
        raise TypeError(f"antifragile(idempotent=...) takes True or False, got {idempotent!r}")
    s = slot(module)
    s.declare(idempotent)

    def decorate(fn: F) -> F:
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                p = s.pipeline
                if p is UNLOADED:
                    p = s.load()
                if p is None:
                    return await bare_async(s.counters, fn, args, kwargs)
                return await p.run_async(fn, args, kwargs)

            async_wrapper.__rafael_module__ = module  # type: ignore[attr-defined]
            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            p = s.pipeline
            if p is UNLOADED:
                p = s.load()
            if p is None:
                return bare_sync(s.counters, fn, args, kwargs)
            return p.run_sync(fn, args, kwargs)

        wrapper.__rafael_module__ = module  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate
