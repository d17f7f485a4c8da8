"""Replace a file atomically: readers (an application loading the genome file, a CI job
uploading the report folder, another xdist worker reading the failure index) see the
old content or the new one, never half a file."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def _default_mode(path: Path) -> int:
    """The file's current permissions, else what a new file gets under the umask."""
    try:
        return path.stat().st_mode & 0o777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def atomic_write(
    path: str | os.PathLike[str], text: str, *, mode: int | None = None, durable: bool = False
) -> None:
    """Write ``text`` (UTF-8, ``\\n`` line ends) to ``path`` through a temporary file in
    the same folder and a rename. ``mode``: the permissions (default: those of the file
    it replaces, else the umask's). ``durable``: fsync the file and the folder, so the
    new content survives a power cut (for files that are the record of a decision)."""
    p = Path(path)
    final_mode = _default_mode(p) if mode is None else mode
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.chmod(tmp, final_mode)
        os.replace(tmp, p)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    if durable:
        _fsync_folder(p.parent)


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable (not possible everywhere: then best effort)."""
    try:
        dfd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)
