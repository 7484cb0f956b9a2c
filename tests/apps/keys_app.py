"""The Celery app the key tests run: tasks that get the user's key and call OpenAI with it.

`celery -A tests.apps.keys_app worker`, configured from the environment (tests start it
with ``start_worker(..., app_module="tests.apps.keys_app", env={...})``):

    BROKER_URL, RESULT_BACKEND, BYOK_TEST_QUEUE   set by start_worker
    BYOK_TASKS_SECRET                             the header secret, read by install()
    BYOK_TEST_NAMESPACE       prefix of every Redis key the test and this worker share
    BYOK_TASKS_ENCRYPTION_KEY when set, sealed keys are opened from {namespace}:sealed:<ref>
    BYOK_TEST_RESOLVER        "1": keys come from the vault hash {namespace}:vault, and
                              every resolver call is counted in {namespace}:resolved:<uid>:<pid>
    OPENAI_BASE_URL           the provider sandbox
    BYOK_TEST_PLATFORM_KEY    the platform's OpenAI key
    SENTRY_DSN                report to this (loopback) Sentry, with ByokIntegration

Tasks never return a key: they return what the provider answered, and whether the key
was the user's, so that no key reaches the result backend through the tests themselves.
"""

from __future__ import annotations

import base64
import json
import os
from typing import Any

import openai
import redis
from celery import Celery

import byok_tasks.celery
from byok_tasks import classify, current_context, current_key, llm_call
from byok_tasks.keys import ENCRYPTION_KEY_ENV, SealedKeyStore

BACKEND_URL = os.environ["RESULT_BACKEND"]
NAMESPACE = os.environ["BYOK_TEST_NAMESPACE"]
MODEL = "gpt-4o-mini"

app = Celery("byok_keys_test", broker=os.environ["BROKER_URL"], backend=BACKEND_URL, set_as_current=False)
app.conf.update(
    task_default_queue=os.environ["BYOK_TEST_QUEUE"],
    result_expires=600,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=True,
)
_redis = redis.Redis.from_url(BACKEND_URL)

if os.environ.get("SENTRY_DSN"):
    import sentry_sdk

    from byok_tasks.sentry import ByokIntegration

    sentry_sdk.init(dsn=os.environ["SENTRY_DSN"], integrations=[ByokIntegration()], send_default_pii=True)


def resolve(uid: str, provider: str) -> str | None:
    """The application's own key store: a Redis hash here, a database or a vault in real life."""
    _redis.incr(f"{NAMESPACE}:resolved:{uid}:{os.getpid()}")
    key = _redis.hget(f"{NAMESPACE}:vault", f"{uid}:{provider}")
    return key.decode() if key is not None else None


byok_tasks.celery.install(
    app,
    key_store=SealedKeyStore(BACKEND_URL, prefix=f"{NAMESPACE}:sealed:")
    if os.environ.get(ENCRYPTION_KEY_ENV)
    else None,
    resolver=resolve if os.environ.get("BYOK_TEST_RESOLVER") else None,
)


def _chat(key: str | None, marker: str) -> str:
    # `user` carries the marker, so the test finds this request among those the sandbox received.
    client = openai.OpenAI(
        api_key=key or os.environ.get("BYOK_TEST_PLATFORM_KEY", "sk-platform-not-configured"),
        base_url=os.environ["OPENAI_BASE_URL"],
        max_retries=0,
    )
    with llm_call("openai", model=MODEL):
        completion = client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "Summarise: hello"}], user=marker
        )
    return completion.choices[0].message.content or ""


def _outcome(marker: str, retries: int = 0) -> dict[str, Any]:
    key = current_key("openai")
    outcome: dict[str, Any] = {"own_key": key is not None, "retries": retries, "pid": os.getpid()}
    try:
        outcome["answer"] = _chat(key, marker)
    except openai.OpenAIError as exc:
        failure = classify(exc)
        outcome["failure"] = None if failure is None else [failure.source, failure.reason]
    return outcome


@app.task(name="keys.summarize", bind=True, max_retries=3)
def summarize(self: Any, marker: str, retry_in: float | None = None) -> dict[str, Any]:
    """Call OpenAI with the current key; with ``retry_in``, get the key, then retry that much later first."""
    if retry_in is not None and self.request.retries == 0:
        current_key("openai")
        raise self.retry(countdown=retry_in)
    return _outcome(marker, self.request.retries)


@app.task(name="keys.then_summarize")
def then_summarize(previous: dict[str, Any], marker: str) -> list[dict[str, Any]]:
    """A chain's second step: the key must reach it too."""
    return [previous, _outcome(marker)]


@app.task(name="keys.summarize_or_fail")
def summarize_or_fail(marker: str) -> str:
    """Let the provider's failure fail the task, as a real task would: Sentry gets the event."""
    return _chat(current_key("openai"), marker)


@app.task(name="keys.fail_holding_key")
def fail_holding_key() -> None:
    """Fail with the key in a local variable, where Sentry's stack frames would find it."""
    key = current_key("openai")
    raise RuntimeError(f"the work failed after getting a key of {len(key or '')} characters")


@app.task(name="keys.no_key_needed")
def no_key_needed() -> str | None:
    """A task under a BYOK context that never asks for a key: the resolver must not be called."""
    context = current_context()
    return None if context is None else context.uid


@app.task(name="keys.header_fields", bind=True, max_retries=1)
def header_fields(self: Any, retry_in: float | None = None) -> dict[str, Any]:
    """The fields of this task's BYOK header as it arrived (after a retry, with ``retry_in``)."""
    if retry_in is not None and self.request.retries == 0:
        raise self.retry(countdown=retry_in)
    payload = str(self.request.get("byok")).split(".")[1]
    fields: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return {**fields, "context": current_context() is not None, "retries": self.request.retries}
