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
# After these the server may already have the request: a reset or a cut while sending
# or waiting for the reply, or a timeout (a connect timeout has a name of its own, above).
_MAY_HAVE_BEEN_SENT = (
    ConnectionResetError,
    ConnectionAbortedError,
    BrokenPipeError,
    TimeoutError,
    EOFError,
)
_CHAIN_MAX = 16  # exception chains are short; a cycle must not hang the check


def not_delivered(err: BaseException) -> bool:
    """True when ``err``, or an error it wraps, proves the request was never sent: a
    refused or unreachable connect, a failed name lookup, or a client library's connect
    error. The chain is walked from ``err`` inwards and stops at the first error that
    decides: one that proves nothing was sent, or one after which the request may have
    arrived (a reset, a broken pipe, a timeout, any other failed socket call)."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen and len(seen) < _CHAIN_MAX:
        seen.add(id(current))
        if _proves_not_sent(current):
            return True
        if _may_have_been_sent(current):
            return False
        current = current.__cause__ or _wrapped_context(current)
    return False


def _proves_not_sent(err: BaseException) -> bool:
    if isinstance(err, (ConnectionRefusedError, socket.gaierror)):
        return True
    if isinstance(err, OSError) and err.errno in _NOT_SENT_ERRNOS:
        return True
    return any(cls.__name__ in _CONNECT_ERROR_NAMES for cls in type(err).__mro__)


def _may_have_been_sent(err: BaseException) -> bool:
    if isinstance(err, _MAY_HAVE_BEEN_SENT):
        return True
    return isinstance(err, OSError) and err.errno is not None


def _wrapped_context(err: BaseException) -> BaseException | None:
    """``err.__context__`` when ``err`` wraps it: raised in the very frame that caught
    it, as a client library turns a refused connect into its own error. An error raised
    deeper down while a caller was handling an earlier one (a failover to a second
    server after the first refused) is a failure of its own, and the earlier error says
    nothing about whether this request arrived."""
    context, tb = err.__context__, err.__traceback__
    if context is None or context.__traceback__ is None or tb is None:
        return None
    while tb.tb_next is not None:
        tb = tb.tb_next
    return context if tb.tb_frame is context.__traceback__.tb_frame else None


class _MatchesNotDelivered(type):
    def __instancecheck__(cls, obj: object) -> bool:
        return isinstance(obj, BaseException) and not_delivered(obj)

    def __subclasscheck__(cls, sub: type) -> bool:
        return type.__subclasscheck__(cls, sub)


class NotDelivered(Exception, metaclass=_MatchesNotDelivered):
    """Never raised: ``isinstance(err, NotDelivered)`` is :func:`not_delivered`, so the
    name can stand in a retry gene's ``on`` list beside real exception types."""
