"""``python -m pytest_rafael.toxiproxy``: the server without the ``rafael`` command."""

from __future__ import annotations

from pytest_rafael.toxiproxy.cli import main

raise SystemExit(main())
