"""What every benchmark app shares: its configuration from the environment and the sentinel tasks.

A round of tasks is framed by two ``bench.mark`` tasks, first and last in the queue. Each
pushes the worker's clock to a Redis list, so a round is timed from the first task the
worker runs to the last one, whatever the worker's start-up cost.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from typing import Any

import redis
from celery import Celery, signals

BROKER_URL = os.environ.get("BYOK_BENCH_BROKER", "redis://127.0.0.1:6379/0")
QUEUE = os.environ.get("BYOK_BENCH_QUEUE", "byok-bench-default")
# Filled in by the app: anything a mark should report about the process that ran it.
mark_details: dict[str, Callable[[], object]] = {}

_redis: redis.Redis | None = None


def redis_client() -> redis.Redis:
    global _redis
    if _redis is None:
        _redis = redis.Redis.from_url(BROKER_URL)
    return _redis


def create_app(name: str) -> Celery:
    app = Celery(name, broker=BROKER_URL, set_as_current=False)
    app.conf.update(
        task_default_queue=QUEUE,
        task_ignore_result=True,
        broker_connection_retry_on_startup=True,
        # No pidbox queue to poll or leave behind: nothing here sends control commands.
        worker_enable_remote_control=False,
    )

    def mark(key: str, label: str) -> None:
        details = {name: value() for name, value in mark_details.items()}
        redis_client().rpush(key, json.dumps({"label": label, "time": time.time(), "pid": os.getpid(), **details}))

    app.task(name="bench.mark", shared=False)(mark)
    return app


def publish_round(app: Celery, queue: str, marks_key: str, publish_tasks: Callable[[], None]) -> None:
    """The start mark, the tasks ``publish_tasks`` sends to ``queue``, and the end mark."""
    app.send_task("bench.mark", (marks_key, "start"), queue=queue)
    publish_tasks()
    app.send_task("bench.mark", (marks_key, "end"), queue=queue)


def _announce_ready(**_: Any) -> None:
    key = os.environ.get("BYOK_BENCH_READY_KEY")
    if key:
        redis_client().rpush(key, str(os.getpid()))


signals.worker_ready.connect(_announce_ready, weak=False)
