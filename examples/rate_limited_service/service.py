"""A price service with a fixed capacity, with or without a per-client rate limiter.

Each ``GET /price`` holds one of two workers for 50 ms (a database query, say): the
service answers about 40 requests per second. Without a limiter a flood queues in front
of the workers and every caller waits behind it. With the limiter each client (the
``X-Client`` header) gets a token bucket; a client over its rate is answered ``429 Too
Many Requests`` at once, without touching a worker, so the other clients keep their
latency.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

WORK_S = 0.05
WORKERS = 2


@dataclass
class TokenBucket:
    """``rate`` tokens per second, up to ``burst``; monotonic time, so a clock jump
    cannot refill it."""

    rate: float
    burst: float
    tokens: float = 0.0
    at: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.tokens = self.burst

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class RateLimiter:
    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst = rate, burst
        self.buckets: dict[str, TokenBucket] = {}
        self.lock = threading.Lock()

    def allow(self, client: str) -> bool:
        with self.lock:
            bucket = self.buckets.setdefault(client, TokenBucket(self.rate, self.burst))
            return bucket.take()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # a flood opens many connections at once

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a flooding client that hangs up mid-reply is not the service's bug


class PriceService:
    """``with PriceService(limiter) as svc:`` serves on ``svc.address`` until the block ends."""

    def __init__(self, limiter: RateLimiter | None) -> None:
        self.limiter = limiter
        self.workers = threading.Semaphore(WORKERS)
        self.served = 0
        self.rejected = 0
        service = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                client = self.headers.get("X-Client", self.client_address[0])
                if service.limiter is not None and not service.limiter.allow(client):
                    service.rejected += 1
                    self._reply(429, b"slow down")
                    return
                with service.workers:
                    time.sleep(WORK_S)
                    service.served += 1
                self._reply(200, b'{"price": 42}')

            def _reply(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = _Server(("127.0.0.1", 0), Handler)

    @property
    def address(self) -> str:
        host, port = self.server.server_address[:2]
        return f"{host}:{port}"

    def __enter__(self) -> PriceService:
        # shutdown() waits for the loop's next poll: 50 ms, not the default 0.5 s.
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
