"""Moved; this module keeps the old import path working. The code lives in

- :mod:`pytest_rafael.scenario.hypothesis_profiles`
"""

from __future__ import annotations

from pytest_rafael.scenario.hypothesis_profiles import CI_PROFILE, PROFILE, register_profiles

__all__ = [
    "CI_PROFILE",
    "PROFILE",
    "register_profiles",
]
