"""A job queue on a real Redis list: the example of a call that must never be sent twice.

``enqueue`` is an RPUSH. If the reply is lost after Redis ran the command, the job is
already queued, and a retry queues it again: two payments, two e-mails. The module is
declared with ``idempotent=False``, so whatever genome it runs with, ``@antifragile``
retries it only after errors that prove nothing was sent (a refused connection), and
evolution never proposes anything broader.
"""

from __future__ import annotations

import inspect

import redis

from pytest_rafael import antifragile
from pytest_rafael.resilience import current_timeout

# Nothing may go over the connection before the command (CLIENT SETINFO would): redis-py
# 7.1+ turns it off with driver_info=None, older releases with lib_name/lib_version=None.
_NO_SETINFO = (
    {"driver_info": None}
    if "driver_info" in inspect.signature(redis.Redis.__init__).parameters
    else {"lib_name": None, "lib_version": None}
)


class JobQueue:
    def __init__(self, host: str, port: int, name: str = "jobs") -> None:
        self.host, self.port, self.name = host, port, name

    def _connect(self) -> redis.Redis:
        timeout = current_timeout() or 5.0
        # RESP2 without a handshake: a cut reply is the command's own. No retries of
        # redis-py's own either: the genome is the only resilience measured here.
        return redis.Redis(
            host=self.host,
            port=self.port,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=None,
            single_connection_client=True,
            protocol=2,
            **_NO_SETINFO,
        )

    @antifragile("jobs", idempotent=False)
    def enqueue(self, job_id: str) -> None:
        with self._connect() as client:
            client.rpush(self.name, job_id)
