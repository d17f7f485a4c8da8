"""TCP addresses the way Toxiproxy's Go server reads them (``net.ResolveTCPAddr``).

Toxiproxy compares a proxy's listen address with a new one only after resolving the new
one (``Proxy.Differs``), validates a PATCH's address before it stops anything, and
words its errors as Go's ``net`` package does. Clients and scripts match on those
texts, so this module reproduces them: ``address 99999: invalid port``,
``listen tcp 127.0.0.1:3310: bind: address already in use``.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass

from pytest_rafael.errors import RafaelError


class AddressError(RafaelError):
    """An address Go's resolver would reject; the message is Go's text."""


@dataclass(frozen=True)
class TcpAddress:
    """A resolved address: ``host`` is an IP literal, or "" for every interface."""

    host: str
    port: int

    def __str__(self) -> str:  # as Go's TCPAddr.String()
        if not self.host:
            return f":{self.port}"
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def _split(address: str) -> tuple[str, str]:
    """Go's net.SplitHostPort, with its error texts."""

    def fail(why: str) -> AddressError:
        return AddressError(f"address {address}: {why}")

    if address.startswith("["):
        end = address.find("]")
        if end < 0:
            raise fail("missing ']' in address")
        rest = address[end + 1 :]
        if not rest:
            raise fail("missing port in address")
        if not rest.startswith(":"):
            raise fail(
                "missing port in address"
                if end == len(address) - 1
                else "unexpected ']' in address"
            )
        host, port = address[1:end], rest[1:]
        if ":" in port:
            raise fail("too many colons in address")
    else:
        colon = address.rfind(":")
        if colon < 0:
            raise fail("missing port in address")
        host, port = address[:colon], address[colon + 1 :]
        if ":" in host:
            raise fail("too many colons in address")
        if "]" in host:
            raise fail("unexpected ']' in address")
    if "[" in host or "[" in port:
        raise fail("unexpected '[' in address")
    if "]" in port:
        raise fail("unexpected ']' in address")
    return host, port


def _port(text: str) -> int:
    if not text:
        return 0
    digits = text[1:] if text[0] in "+-" else text
    if digits.isdigit() and digits.isascii():
        value = int(text)
        if not 0 <= value <= 0xFFFF:
            raise AddressError(f"address {text}: invalid port")
        return value
    try:
        return socket.getservbyname(text, "tcp")
    except OSError:
        raise AddressError(f"address tcp/{text}: unknown port") from None


def _ip_literal(host: str) -> str | None:
    name, _, zone = host.partition("%")
    try:
        ip = ipaddress.ip_address(name)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return f"{ip}%{zone}" if zone else str(ip)
    return None if zone else str(ip)


def resolve(address: str) -> TcpAddress:
    """Go's ``net.ResolveTCPAddr("tcp", address)``: a host name resolves to its first
    IPv4 address (else its first address), ``:port`` and ``""`` to every interface."""
    if not address:
        return TcpAddress("", 0)
    host, port_text = _split(address)
    port = _port(port_text)
    if not host:
        return TcpAddress("", port)
    literal = _ip_literal(host)
    if literal is not None:
        return TcpAddress(literal, port)
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise AddressError(f"lookup {host}: no such host") from None
    ips = [str(info[4][0]) for info in infos]
    v4 = [ip for ip in ips if ":" not in ip]
    return TcpAddress((v4 or ips)[0], port)


def bind_error(address: TcpAddress, error: OSError) -> str:
    """Go's text for a ``net.Listen("tcp", ...)`` whose bind failed (Go's errno texts
    are the C library's, lower-cased)."""
    reason = (error.strerror or str(error)).strip()
    return f"listen tcp {address}: bind: {reason[:1].lower()}{reason[1:]}"
