"""Tasks and jobs under ``llm_retry``, for tests/retry: each makes one real OpenAI SDK call.

The SDK's own retries are off (``max_retries=0``), as ``llm_retry`` asks, so every call
the provider receives is one run of the task. ``feature`` names the call in reports, so
that a test finds the log records of its own task.
"""

from __future__ import annotations

from typing import Any

import openai
from celery import Celery

import byok_tasks.celery
import byok_tasks.rq
from byok_tasks import llm_call

# Small waits keep the tests short; the first backoff still waits at least half a second,
# longer than Celery needs to record RETRY before the next run can end (tests/apps/celery_app.py).
MAX_RETRIES = 2
BACKOFF = 1.0
RETRY_AFTER_MAX = 5.0
# The SDK's timeout: a reply that comes is waited for, however loaded the machine (1 s for
# every call would make a slow loopback reply a timeout, as a 0.5 s one did in the
# classification tests); only a job scripted to meet a stall is given the short one.
REPLY_TIMEOUT = 30.0
STALL_TIMEOUT = 1.0
# For the retry-after tests: a backoff so long that a retry made without reading the
# provider's retry-after could not pass for one that did.
SLOW_BACKOFF = 10.0
# Not a key: the loopback provider does not look at it.
API_KEY = "sk-test-retry-not-a-key"


def summarize(base_url: str, feature: str, timeout: float = REPLY_TIMEOUT) -> str:
    client = openai.OpenAI(api_key=API_KEY, base_url=base_url, max_retries=0, timeout=timeout)
    with llm_call("openai", model="gpt-4o-mini", feature=feature):
        reply = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    return reply.choices[0].message.content or ""


class ProviderUnreachable(ConnectionError):
    """Not an LLM failure: the task's own autoretry_for handles it."""


def register(app: Celery) -> None:
    policy = byok_tasks.celery.llm_retry(max_retries=MAX_RETRIES, backoff=BACKOFF, retry_after_max=RETRY_AFTER_MAX)

    @app.task(shared=False, name="retry.summarize", **policy)
    def summarize_task(base_url: str, feature: str, timeout: float = REPLY_TIMEOUT) -> str:
        return summarize(base_url, feature, timeout)

    @app.task(shared=False, name="retry.summarize_slow_backoff", **byok_tasks.celery.llm_retry(backoff=SLOW_BACKOFF))
    def summarize_slow_backoff(base_url: str, feature: str) -> str:
        return summarize(base_url, feature)

    @app.task(shared=False, name="retry.plain_failure", **policy)
    def plain_failure(marker: str) -> None:
        raise ValueError(f"not an LLM failure {marker}")

    @app.task(
        shared=False,
        name="retry.own_autoretry",
        bind=True,
        autoretry_for=(ProviderUnreachable,),
        retry_kwargs={"countdown": 1, "max_retries": 3},
        **policy,
    )
    def own_autoretry(self: Any, base_url: str, feature: str) -> list[int]:
        # A failure of our own first, retried by autoretry_for; then the LLM call, retried by the policy.
        if self.request.retries < 1:
            raise ProviderUnreachable("not yet")
        return [self.request.retries, len(summarize(base_url, feature))]


@byok_tasks.rq.llm_retry(max_retries=MAX_RETRIES, backoff=BACKOFF, retry_after_max=RETRY_AFTER_MAX)
def summarize_job(base_url: str, feature: str, timeout: float = REPLY_TIMEOUT) -> str:
    return summarize(base_url, feature, timeout)


@byok_tasks.rq.llm_retry(max_retries=MAX_RETRIES, backoff=BACKOFF, retry_after_max=RETRY_AFTER_MAX)
async def summarize_async_job(base_url: str, feature: str) -> str:
    client = openai.AsyncOpenAI(api_key=API_KEY, base_url=base_url, max_retries=0, timeout=REPLY_TIMEOUT)
    with llm_call("openai", model="gpt-4o-mini", feature=feature):
        reply = await client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    return reply.choices[0].message.content or ""


@byok_tasks.rq.llm_retry(backoff=SLOW_BACKOFF)
def summarize_slow_backoff_job(base_url: str, feature: str) -> str:
    return summarize(base_url, feature)


@byok_tasks.rq.llm_retry(max_retries=MAX_RETRIES, backoff=BACKOFF, retry_after_max=RETRY_AFTER_MAX)
def plain_failure_job(marker: str) -> None:
    raise ValueError(f"not an LLM failure {marker}")
