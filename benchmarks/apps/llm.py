"""Failing LLM tasks reported to Sentry with ByokIntegration: the Sentry outage benchmark.

Each task calls the real OpenAI SDK against the loopback provider sandbox
(``OPENAI_BASE_URL``) with an invalid key, for a user of its own, and fails with
``openai.AuthenticationError``; sentry-sdk (``SENTRY_DSN``) reports the failure, which
ByokIntegration tags. Every failed task adds one to the Redis counter ``BYOK_BENCH_FAILURES_KEY``.
"""

from __future__ import annotations

import os
from typing import Any

import httpx2
import openai
from celery import signals

import byok_tasks.celery
from benchmarks.apps._common import create_app, publish_round, redis_client
from byok_tasks import byok_context, llm_call
from byok_tasks.testing.sandbox import sandbox_key

# Storm control would send one event per user and window, and a worker that lives through
# several rounds would send nothing after the first: the outage must be met by every failure.
STORM_BUDGET = 1_000_000_000

if os.environ.get("SENTRY_DSN"):
    import sentry_sdk

    from byok_tasks.sentry import ByokIntegration

    sentry_sdk.init(dsn=os.environ["SENTRY_DSN"], integrations=[ByokIntegration(storm_budget=STORM_BUDGET)])

app = create_app("byok_bench_llm")
byok_tasks.celery.install(app)
# One connection pool for every per-user client, as a BYOK worker would keep it.
_http = httpx2.Client()


def summarize() -> str:
    client = openai.OpenAI(
        api_key=sandbox_key("openai", "invalid"),
        base_url=os.environ.get("OPENAI_BASE_URL"),
        max_retries=0,
        http_client=_http,
    )
    with llm_call("openai", model="gpt-4o-mini"):
        completion = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "Summarise: we met and agreed."}]
        )
    return completion.choices[0].message.content or ""


summarize_task = app.task(name="bench.summarize", shared=False)(summarize)


def _count_failure(**_: Any) -> None:
    key = os.environ.get("BYOK_BENCH_FAILURES_KEY")
    if key:
        redis_client().incr(key)


signals.task_failure.connect(_count_failure, weak=False)


def enqueue_round(queue: str, tasks: int, marks_key: str) -> None:
    def publish() -> None:
        for user in range(tasks):
            with byok_context(f"user_{user:015d}", ["openai"]):
                summarize_task.apply_async(queue=queue)

    publish_round(app, queue, marks_key, publish)
