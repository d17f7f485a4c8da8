"""Kernel receive stamps: when the bytes a toxic reads reached this host.

A latency toxic delays bytes from their arrival. Taking the arrival as the moment the
pump read them would add, to every delay, the time a loaded machine took to wake the
pump's thread; the kernel's receive stamp (``SO_TIMESTAMPNS``, on the wall clock) says
when they really came. Linux only; elsewhere the read time stands.
"""

from __future__ import annotations

import platform
import socket
import struct
import sys

# The generic value, shared by the architectures listed (others keep the read time).
SO_TIMESTAMPNS = 35
RX_STAMPS = sys.platform.startswith("linux") and platform.machine() in {
    "x86_64",
    "aarch64",
    "arm64",
    "i386",
    "i686",
    "armv7l",
    "riscv64",
    "ppc64le",
    "s390x",
}
STAMP_SPACE = socket.CMSG_SPACE(16) if RX_STAMPS else 0


def arrival(ancillary: list[tuple[int, int, bytes]], now: float, wall: float) -> float:
    """When the bytes just read reached the socket, on the monotonic clock (else ``now``).

    ``now`` and ``wall`` are the monotonic and wall-clock times of the read. The kernel
    stamps bytes on the wall clock; a stamp in the future or more than a second old (the
    wall clock was stepped) is not trusted.
    """
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(payload) >= 16:
            seconds, nanoseconds = struct.unpack_from("=qq", payload)
            age: float = wall - (seconds + nanoseconds * 1e-9)
            if 0.0 <= age < 1.0:
                return now - age
    return now
