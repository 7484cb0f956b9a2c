"""Entry point of the test workers: `celery -A tests.apps.worker_main worker`."""

import os
from typing import Any

import redis
from celery import signals

from byok_tasks import current_context
from tests.apps.celery_app import create_app

QUEUE = os.environ["BYOK_TEST_QUEUE"]

app = create_app(
    os.environ["BROKER_URL"],
    os.environ["RESULT_BACKEND"],
    QUEUE,
    require_signature=bool(os.environ.get("BYOK_TEST_REQUIRE_SIGNATURE")),
)
_store = redis.Redis.from_url(os.environ["RESULT_BACKEND"])


@signals.task_postrun.connect(weak=False)
def count_leaks(**_: Any) -> None:
    # Connected after byok_tasks' own postrun handler, so it sees what outlives a task
    # in this thread or greenlet: the context must be gone by now.
    if current_context() is not None:
        _store.incr(f"byok-test:{QUEUE}:leaked")
