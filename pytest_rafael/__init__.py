"""pytest-rafael: chaos testing for pytest with evolved, audited resilience settings.

Application code imports :func:`antifragile` in production, so this module stays light:
no pytest, no jinja2, no Toxiproxy server is imported here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["__version__", "antifragile"]

if TYPE_CHECKING:
    from pytest_rafael.resilience.antifragile import antifragile


def __getattr__(name: str) -> Any:
    # Lazy so that `import pytest_rafael` (done by pytest for the plugin entry point)
    # does not pay for the resilience runtime unless it is used.
    if name == "antifragile":
        from pytest_rafael.resilience import antifragile

        return antifragile
    raise AttributeError(f"module 'pytest_rafael' has no attribute {name!r}")
