"""Chaos test of a non-idempotent write: enqueueing jobs while replies are cut.

Under ``reply_cut`` Redis receives every RPUSH, but for about 0.6 s the replies never
reach the client, which cannot tell whether the job was queued. A retry on that error
queues the job twice; the test counts the queue directly, without the proxy, and fails on
any duplicate. Evolution must not propose such a retry, and the report says why.
"""

from __future__ import annotations

import time
import uuid

import pytest
import redis
from jobs import JobQueue


@pytest.mark.chaos("reply_cut", module="jobs")
def test_each_job_is_queued_exactly_once(chaos_proxy, redis_server, chaos):
    db = chaos_proxy("db", redis_server.address)
    name = f"jobs:{uuid.uuid4().hex}"
    queue = JobQueue(db.host, db.port, name)
    unknown = 0
    for n in range(10):
        try:
            queue.enqueue(f"job-{n}")
        except redis.ConnectionError:
            unknown += 1  # the reply was lost: the job may or may not be queued
        time.sleep(0.1)
    direct = redis.Redis(host=redis_server.host, port=redis_server.port)
    queued = [j.decode() for j in direct.lrange(name, 0, -1)]
    direct.delete(name)
    chaos.record(unknown_outcomes=unknown, queued=len(queued))
    duplicates = sorted({j for j in queued if queued.count(j) > 1})
    assert not duplicates, f"queued more than once: {duplicates}"
    assert sorted(queued, key=lambda j: int(j.split("-")[1])) == [f"job-{n}" for n in range(10)]
