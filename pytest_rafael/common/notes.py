"""A note on an exception on its way up (PEP 678), on every Python we support."""

from __future__ import annotations

import sys


def add_note(exc: BaseException, text: str) -> None:
    """Add ``text`` to ``exc``'s notes. Python 3.10 has no ``add_note``, but pytest prints
    ``__notes__`` there too."""
    if sys.version_info >= (3, 11):
        exc.add_note(text)
    else:  # pragma: no cover - 3.10
        setattr(exc, "__notes__", [*getattr(exc, "__notes__", []), text])  # noqa: B010
