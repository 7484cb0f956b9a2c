"""What byok-tasks adds to an RQ job: run ``python benchmarks/bench_rq.py``.

Two figures, each the median per job over several rounds, measured in memory so that
Redis's latency and the machine's load do not drown them:

- at enqueue: ``Job.create`` under a signed context, less ``Job.create`` without one
  (encoding and signing the header, copying the meta);
- in the worker: byok-tasks' wrapper of ``perform_job`` around a job that does nothing,
  with a signed header (checking it, restoring and resetting the context), less the same
  wrapper around a job without one.

The target is under 100 µs per job in all, about 1% of the milliseconds RQ itself spends
on a job's round trips to Redis (the last line, measured on the Redis at 127.0.0.1:6379
when it answers). Nearly all of it is the header codec's (``byok_tasks.header``).
"""

from __future__ import annotations

import statistics
import sys
import time
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

import fakeredis
import redis
from rq import Queue, SimpleWorker
from rq.job import Job

import byok_tasks.rq
from byok_tasks import byok_context

TARGET_US = 100.0
NUMBER = 2_000
ROUNDS = 9
REDIS_JOBS = 300
# A job must be importable by the worker: this one returns the context it runs under.
JOB = "byok_tasks.context.current_context"


def median_us(statement: Callable[[], object]) -> float:
    return statistics.median(timeit.repeat(statement, number=NUMBER, repeat=ROUNDS)) / NUMBER * 1e6


def enqueue_side_us(connection: Any) -> tuple[float, float]:
    def create() -> Job:
        return Job.create(JOB, connection=connection)

    plain = median_us(create)
    with byok_context("user-42", ["openai", "anthropic"]):
        signed = median_us(create)
    return plain, signed


def worker_side_us(connection: Any) -> tuple[float, float]:
    # The wrapper install() puts around perform_job, around a job that does nothing.
    restoring = byok_tasks.rq._restoring(lambda worker, job, queue: True)
    worker = SimpleWorker([Queue("bench", connection=connection)], connection=connection)
    plain_job = Job.create(JOB, connection=connection)
    with byok_context("user-42", ["openai", "anthropic"]):
        signed_job = Job.create(JOB, connection=connection)
    plain = median_us(lambda: restoring(worker, plain_job, None))
    signed = median_us(lambda: restoring(worker, signed_job, None))
    return plain, signed


def rq_round_trip_ms() -> float | None:
    """Enqueue and run one job on the real Redis with a SimpleWorker, without a context: RQ's own cost."""
    connection = redis.Redis.from_url("redis://127.0.0.1:6379/0")
    try:
        connection.ping()
    except redis.ConnectionError:
        return None
    queue = Queue(f"byok-bench-{time.time_ns()}", connection=connection)
    started = time.perf_counter()
    jobs = [queue.enqueue(JOB, result_ttl=60) for _ in range(REDIS_JOBS)]
    SimpleWorker([queue], connection=connection).work(burst=True, logging_level="WARNING")
    elapsed = time.perf_counter() - started
    connection.delete(*(job.key for job in jobs), *(f"rq:results:{job.id}" for job in jobs))
    return elapsed / REDIS_JOBS * 1e3


def main() -> int:
    byok_tasks.rq.install(secret="benchmark-secret")
    connection = fakeredis.FakeRedis()  # never reached by what is timed; Job and Worker need one
    plain_create, signed_create = enqueue_side_us(connection)
    plain_restore, signed_restore = worker_side_us(connection)
    added = (signed_create - plain_create) + (signed_restore - plain_restore)
    print(f"median of {ROUNDS} rounds of {NUMBER}, per job; target < {TARGET_US:.0f} µs added\n")
    print(f"  Job.create without context           {plain_create:7.1f} µs")
    print(f"  Job.create under a signed context    {signed_create:7.1f} µs  (+{signed_create - plain_create:.1f})")
    print(f"  perform_job wrapper, no header       {plain_restore:7.1f} µs")
    print(f"  perform_job wrapper, signed header   {signed_restore:7.1f} µs  (+{signed_restore - plain_restore:.1f})")
    print(f"\n{added:.1f} µs added per job: {'within' if added < TARGET_US else 'over'} the {TARGET_US:.0f} µs target")
    round_trip = rq_round_trip_ms()
    if round_trip is not None:
        print(f"for scale, RQ's own enqueue + run on the local Redis: {round_trip:.2f} ms per job ({REDIS_JOBS} jobs)")
    return 0 if added < TARGET_US else 1


if __name__ == "__main__":
    sys.exit(main())
