"""The Celery app of the fault tests: `celery -A tests.faults.app worker`, configured from the environment.

    BROKER_URL, RESULT_BACKEND, BYOK_TEST_QUEUE   set by start_worker
    BYOK_TASKS_SECRET          the header secret, read by install()
    BYOK_TEST_KEY_STORE_URL    when set, sealed keys are opened from the Redis there
                               (with BYOK_TASKS_ENCRYPTION_KEY): the store a test kills or freezes
    SENTRY_DSN                 report to this Sentry, with ByokIntegration
    BYOK_TEST_SHUTDOWN_TIMEOUT sentry-sdk's shutdown_timeout, in seconds

Tasks write what they saw to the result backend's Redis (the shared one, which no test
breaks) under ``<namespace>:...``, a prefix the test passes: never a key, only whose key it was.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import redis
from celery import Celery

import byok_tasks.celery
from byok_tasks import ByokKeyUnavailable, current_context, current_key
from byok_tasks.keys import SealedKeyStore

# What a task would spend when current_key() answers None: it must never come to that here.
PLATFORM_KEY = "sk-platform-key-of-the-fault-tests"

app = Celery("byok_faults_test", broker=os.environ["BROKER_URL"], backend=os.environ["RESULT_BACKEND"])
app.conf.update(
    task_default_queue=os.environ["BYOK_TEST_QUEUE"],
    result_expires=600,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=True,
)
_records = redis.Redis.from_url(os.environ["RESULT_BACKEND"])

if os.environ.get("SENTRY_DSN"):
    import sentry_sdk
    from sentry_sdk.integrations.celery import CeleryIntegration

    from byok_tasks.sentry import ByokIntegration

    sentry_sdk.init(
        dsn=os.environ["SENTRY_DSN"],
        integrations=[ByokIntegration(), CeleryIntegration()],
        # Not the SDKs' integrations that this environment happens to have installed:
        # importing all of them takes the worker ten seconds or more to start.
        auto_enabling_integrations=False,
        shutdown_timeout=float(os.environ.get("BYOK_TEST_SHUTDOWN_TIMEOUT", "2")),
    )

_store_url = os.environ.get("BYOK_TEST_KEY_STORE_URL")
byok_tasks.celery.install(app, key_store=SealedKeyStore(_store_url) if _store_url else None)


def record(namespace: str, what: str, value: Any) -> None:
    _records.set(f"{namespace}:{what}", json.dumps(value), ex=600)


@app.task(name="faults.use_key")
def use_key(namespace: str, marker: str) -> str:
    """Take the user's OpenAI key as a real task would; record whose key it went on with, or what stopped it."""
    started = time.monotonic()
    try:
        key = current_key("openai") or PLATFORM_KEY
    except ByokKeyUnavailable as exc:
        record(namespace, marker, {"raised": type(exc).__name__, "elapsed": time.monotonic() - started})
        raise
    record(namespace, marker, {"key": "platform" if key == PLATFORM_KEY else "user"})
    return "done"


@app.task(name="faults.record_context", ignore_result=True)
def record_context(namespace: str, seq: int) -> None:
    """Count a run of task ``seq`` under the uid its context carries (or "none")."""
    context = current_context()
    _records.hincrby(f"{namespace}:runs", f"{seq}:{context.uid if context else 'none'}", 1)
