"""Which errors prove that a request never reached the server.

A retry is safe for any call after such an error: nothing was delivered, so nothing can
be done twice. After any other error (a reset, a timeout while waiting for the reply, a
cut reply) the server may already have acted on the request, and re-sending a
non-idempotent call (an enqueue, a payment, an INSERT) can do it twice.

``NotDelivered`` is the name genome files use for this class of errors
(``retry: {on: [NotDelivered]}``). It is the default of ``retry.on``: a module must be
declared idempotent before evolution or a default gene retries anything else.
"""

from __future__ import annotations

import errno
import socket

NOT_DELIVERED = "NotDelivered"

# Client libraries' own names for "could not connect" (httpx ConnectError and
# ConnectTimeout, urllib3 NewConnectionError and ConnectTimeoutError, requests
# ConnectTimeout), matched by name so that none of them has to be imported.
_CONNECT_ERROR_NAMES = frozenset(
    {"ConnectError", "ConnectTimeout", "NewConnectionError", "ConnectTimeoutError"}
)
_NOT_SENT_ERRNOS = frozenset(
    {errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EADDRNOTAVAIL}
)
_CHAIN_MAX = 16  # exception chains are short; a cycle must not hang the check


def not_delivered(err: BaseException) -> bool:
    """True when ``err`` or an error it was raised from proves the request was never sent:
    a refused or unreachable connect, a failed name lookup, or a client library's
    connect error."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen and len(seen) < _CHAIN_MAX:
        seen.add(id(current))
        if _proves_not_sent(current):
            return True
        current = current.__cause__ or current.__context__
    return False


def _proves_not_sent(err: BaseException) -> bool:
    if isinstance(err, (ConnectionRefusedError, socket.gaierror)):
        return True
    if isinstance(err, OSError) and err.errno in _NOT_SENT_ERRNOS:
        return True
    return any(cls.__name__ in _CONNECT_ERROR_NAMES for cls in type(err).__mro__)


class _MatchesNotDelivered(type):
    def __instancecheck__(cls, obj: object) -> bool:
        return isinstance(obj, BaseException) and not_delivered(obj)

    def __subclasscheck__(cls, sub: type) -> bool:
        return type.__subclasscheck__(cls, sub)


class NotDelivered(Exception, metaclass=_MatchesNotDelivered):
    """Never raised: ``isinstance(err, NotDelivered)`` is :func:`not_delivered`, so the
    name can stand in a retry gene's ``on`` list beside real exception types."""
