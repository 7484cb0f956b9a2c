"""The Celery app behind the web test servers: `celery -A tests.apps.web_worker worker`, and the servers' publisher.

Configured from the environment like tests/apps/worker_main.py, plus sealed keys:
``BYOK_TASKS_ENCRYPTION_KEY`` and ``BYOK_TEST_KEY_PREFIX`` (the Redis prefix of this run's
sealed keys). Its tasks answer what the worker saw, never a key: a key's SHA-256 stands
for it, so that no key is written to the result backend.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from celery import Celery

import byok_tasks.celery
from byok_tasks import current_key, submit_with_context
from byok_tasks.keys import SealedKeyStore
from tests.apps.celery_app import seen

QUEUE = os.environ["BYOK_TEST_QUEUE"]

app = Celery("byok_web_test", broker=os.environ["BROKER_URL"], backend=os.environ["RESULT_BACKEND"])
app.conf.update(
    task_default_queue=QUEUE,
    result_expires=600,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=True,
)
byok_tasks.celery.install(
    app,
    key_store=SealedKeyStore(os.environ["RESULT_BACKEND"], ttl=600, prefix=os.environ["BYOK_TEST_KEY_PREFIX"]),
)


def digest(key: str | None) -> str | None:
    return None if key is None else hashlib.sha256(key.encode()).hexdigest()


@app.task(name="web.whoami")
def whoami() -> list[Any] | None:
    return seen()


@app.task(name="web.key_digest")
def key_digest(provider: str) -> list[Any]:
    return [seen(), digest(current_key(provider))]


@app.task(name="web.threads_see")
def threads_see(count: int) -> list[Any]:
    """What ``count`` thread-pool jobs submitted with submit_with_context see, next to one submitted plainly."""
    with ThreadPoolExecutor(max_workers=count + 1) as pool:
        carried = [submit_with_context(pool, seen) for _ in range(count)]
        plain = pool.submit(seen)
        return [[job.result() for job in carried], plain.result()]


@app.task(name="web.asyncio_sees")
def asyncio_sees(count: int) -> list[Any]:
    """What ``count`` asyncio tasks, and a thread they start with asyncio.to_thread, see."""

    async def child() -> list[Any] | None:
        await asyncio.sleep(0)
        return seen()

    async def main() -> list[Any]:
        children = await asyncio.gather(*(asyncio.create_task(child()) for _ in range(count)))
        in_thread = await asyncio.to_thread(seen)
        return [children, in_thread]

    return asyncio.run(main())
