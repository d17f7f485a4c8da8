"""Imports that must happen once, before any in-process pytester run.

``pytester.runpytest()`` restores ``sys.modules`` after each in-process run. A library
first imported inside such a run is imported a second time later, and objects of the
first copy then fail ``isinstance`` checks against the second: requests refuses its own
cookie jar ("You can only merge into CookieJar") inside toxiproxy-python. Importing them
here keeps one copy for the whole session.
"""

from __future__ import annotations

import requests  # noqa: F401
import toxiproxy
import toxiproxy.api  # noqa: F401
