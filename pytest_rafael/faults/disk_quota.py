"""The ``disk_full`` fault: writes under a path fail with ``ENOSPC`` after a byte budget.

Files opened for writing under the path (with ``open``, ``io.open``, ``Path.open`` and
friends, or ``os.open``) count every byte that reaches the operating system; once the
budget is spent a write raises ``OSError(ENOSPC, "No space left on device")``. As on a
real disk, a buffered file fails when its buffer is flushed (at ``flush``, ``close`` or
when the buffer fills), and a write that only partly fits writes what fits first.

The file objects are the standard ones (``io.BufferedWriter``, ``io.TextIOWrapper``) over
a ``FileIO`` subclass, so ``isinstance`` checks keep working. Not reached: files opened
before the fault, ``os.sendfile`` and ``mmap``, and writes made by C libraries.
"""

from __future__ import annotations

import builtins
import errno
import io
import os
import threading
from typing import Any

from pytest_rafael.faults.inprocess import Rebinding

__all__ = ["DiskFull"]

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT


class _Budget:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self.failed = 0
        self.files: set[str] = set()
        self.lock = threading.Lock()

    def take(self, wanted: int) -> int:
        """How many of ``wanted`` bytes may still be written; raises ENOSPC at zero."""
        with self.lock:
            allowed = min(wanted, self.limit - self.used)
            if allowed <= 0 and wanted > 0:
                self.failed += 1
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            self.used += allowed
            return allowed


class DiskFull:
    """Applied on construction; :meth:`revert` restores ``open``/``os`` and reports."""

    def __init__(self, path: str, limit: int) -> None:
        self.prefix = None if path == "*" else os.path.realpath(os.path.abspath(path))
        self.budget = _Budget(limit)
        self.fds: set[int] = set()
        budget = self.budget

        class QuotaFileIO(io.FileIO):
            def write(self, data: Any) -> int:
                view = memoryview(data).cast("B")
                allowed = budget.take(len(view))
                return super().write(view[:allowed])

        self._file_class = QuotaFileIO
        self.originals = (builtins.open, os.open, os.write, os.close)
        self.rebinding = Rebinding()
        self.rebinding.swap(builtins, "open", self._open, everywhere=builtins.open)
        self.rebinding.swap(os, "open", self._os_open, everywhere=os.open)
        self.rebinding.swap(os, "write", self._os_write, everywhere=os.write)
        self.rebinding.swap(os, "close", self._os_close, everywhere=os.close)

    def covers(self, file: Any) -> bool:
        if isinstance(file, int):
            return file in self.fds
        try:
            path = os.fsdecode(os.fspath(file))
        except TypeError:
            return False
        if self.prefix is None:
            return True
        real = os.path.realpath(os.path.abspath(path))
        return real == self.prefix or real.startswith(self.prefix.rstrip(os.sep) + os.sep)

    def _open(
        self,
        file: Any,
        mode: str = "r",
        buffering: int = -1,
        encoding: str | None = None,
        errors: str | None = None,
        newline: str | None = None,
        closefd: bool = True,
        opener: Any = None,
    ) -> Any:
        writing = isinstance(mode, str) and any(c in mode for c in "wax+")
        if not writing or not self.covers(file):
            return self.originals[0](
                file, mode, buffering, encoding, errors, newline, closefd, opener
            )
        raw = self._file_class(
            file, "".join(c for c in mode if c in "rwax+"), closefd, opener=opener
        )
        self.budget.files.add(str(raw.name))
        return _layers(raw, mode, buffering, encoding, errors, newline)

    def _os_open(self, path: Any, flags: int, mode: int = 0o777, *, dir_fd: Any = None) -> int:
        fd: int = self.originals[1](path, flags, mode, dir_fd=dir_fd)
        if flags & _WRITE_FLAGS and dir_fd is None and self.covers(path):
            self.fds.add(fd)
            self.budget.files.add(os.fsdecode(path))
        return fd

    def _os_write(self, fd: int, data: Any) -> int:
        if fd not in self.fds:
            written: int = self.originals[2](fd, data)
            return written
        view = memoryview(data).cast("B")
        allowed = self.budget.take(len(view))
        written = self.originals[2](fd, view[:allowed])
        return written

    def _os_close(self, fd: int) -> None:
        self.fds.discard(fd)
        self.originals[3](fd)

    def revert(self) -> dict[str, Any]:
        self.rebinding.restore()
        budget = self.budget
        return {
            "limit_bytes": budget.limit,
            "written_bytes": budget.used,
            "failed_writes": budget.failed,
            "files": len(budget.files),
        }


def _layers(
    raw: io.FileIO,
    mode: str,
    buffering: int,
    encoding: str | None,
    errors: str | None,
    newline: str | None,
) -> Any:
    """The buffered (and text) layers over ``raw``, as ``open()`` builds them."""
    line_buffering = False
    if buffering == 1 or (buffering < 0 and raw.isatty()):
        buffering, line_buffering = -1, True
    if buffering < 0:
        buffering = io.DEFAULT_BUFFER_SIZE
    binary = "b" in mode
    if buffering == 0:
        if binary:
            return raw
        raw.close()
        raise ValueError("can't have unbuffered text I/O")
    buffered = io.BufferedRandom if "+" in mode else io.BufferedWriter
    buffer = buffered(raw, buffering)
    if binary:
        return buffer
    text = io.TextIOWrapper(buffer, encoding, errors, newline, line_buffering)
    text.mode = mode  # type: ignore[misc]
    return text
