"""The process of one variant: ``python -m benchmarks._variant``, driven by run.py.

``BYOK_BENCH_APP`` names the app module (``benchmarks.apps.trivial`` or ``benchmarks.apps.llm``),
which reads its variant from the environment. Commands:

- ``publish_cost(tasks)``: time ``tasks`` ``add.delay(1)`` calls to the app's own queue,
  then describe the last message and drop the queue (nobody consumes it);
- ``trace_cost(calls)``: time ``calls`` runs of the tracer a worker runs each task in, on
  a message this variant published, with no broker: the worker's side, less its I/O;
- ``enqueue_round(queue, tasks, marks_key)``: fill ``queue`` with one round for a worker.
"""

from __future__ import annotations

import importlib
import json
import os
import time
from typing import Any

from benchmarks._child import serve
from benchmarks.apps._common import QUEUE, redis_client

bench_app: Any = importlib.import_module(os.environ["BYOK_BENCH_APP"])


def _take_published() -> tuple[bytes, int]:
    """The newest message in this variant's queue, and how many there were; the queue is dropped."""
    store = redis_client()
    newest, published = store.lindex(QUEUE, 0), int(store.llen(QUEUE))
    store.delete(QUEUE)
    assert isinstance(newest, bytes), "the queue is empty: nothing was published"
    return newest, published


def publish_cost(tasks: int) -> dict[str, Any]:
    add, hooks = bench_app.add, bench_app.hooks
    started_wall, started_cpu = time.perf_counter(), time.process_time()
    bench_app.publish(tasks, lambda: add.delay(1))
    # What the peers buffer (spans, transactions) is part of their cost.
    hooks.flush()
    wall, cpu = time.perf_counter() - started_wall, time.process_time() - started_cpu
    newest, published = _take_published()
    headers = json.loads(newest)["headers"]
    return {
        "wall": wall,
        "cpu": cpu,
        "published": published,
        "message_bytes": len(newest),
        # Each header as it travels in the message: its JSON member ``"name": value``.
        "header_bytes": {name: len(json.dumps({name: value})) - 2 for name, value in headers.items()},
    }


def trace_cost(calls: int) -> float:
    from celery.app import trace  # looked up now: sentry-sdk patches build_tracer

    app, add, hooks = bench_app.app, bench_app.add, bench_app.hooks
    bench_app.publish(1, lambda: add.delay(1))
    message = json.loads(_take_published()[0])
    app.finalize()  # where byok-tasks wraps the tasks, as in a worker
    tracer = trace.build_tracer(add.name, add, app=app, hostname="bench@localhost", eager=False)
    # The request a worker builds from the message: its headers, where it came from, what it holds.
    request = {
        **message["headers"],
        "delivery_info": {"exchange": "", "routing_key": QUEUE, "priority": 0, "redelivered": False},
        "args": [1],
        "kwargs": {},
        "hostname": "bench@localhost",
        "is_eager": False,
    }
    task_id = message["headers"]["id"]
    assert tracer(task_id, (1,), {}, dict(request))[0] == 2, "the task did not run"
    started = time.process_time()
    for _ in range(calls):
        tracer(task_id, (1,), {}, dict(request))
    hooks.flush()
    return time.process_time() - started


def enqueue_round(queue: str, tasks: int, marks_key: str) -> int:
    bench_app.enqueue_round(queue, tasks, marks_key)
    return int(redis_client().llen(queue))


if __name__ == "__main__":
    serve({"publish_cost": publish_cost, "trace_cost": trace_cost, "enqueue_round": enqueue_round})
