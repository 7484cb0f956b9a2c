"""The app of the key-health tests: `celery -A tests.apps.health_worker worker`, and RQ's settings and jobs.

BROKER_URL, RESULT_BACKEND, BYOK_TEST_QUEUE   set by start_worker (Celery)
BYOK_TEST_RQ_REDIS_URL                         set by start_rq_worker (RQ)
BYOK_TEST_NS              the test's namespace on the shared Redis: users' keys (the
                          resolver's "database", hash <ns>:keys), what the hook saw, task timings
BYOK_TEST_HEALTH_URL      the key-health store (the shared Redis, or one a test kills)
BYOK_TEST_HEALTH          JSON of KeyHealth options (threshold, cooloff, claim_ttl, timeout, ...)
BYOK_TEST_HOOK            ok | fail-first | hang: what the user hook does
BYOK_TEST_STORM_WINDOW    ByokIntegration's storm window, seconds
SENTRY_DSN                report to this Sentry, with ByokIntegration
OPENAI_BASE_URL           the provider sandbox
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import openai
import redis

from byok_tasks import KeyHealth, KeyNotice, current_key, llm_call
from byok_tasks.keys import SealedKeyStore

NS = os.environ["BYOK_TEST_NS"]
SHARED_URL = os.environ.get("RESULT_BACKEND") or os.environ["BYOK_TEST_RQ_REDIS_URL"]
PLATFORM_KEY = os.environ.get("BYOK_TEST_PLATFORM_KEY", "sk-proj-invalid-platform-key-of-the-health-tests")
_shared = redis.Redis.from_url(SHARED_URL)
_body_ended = 0.0


def resolve(uid: str, provider: str) -> str | None:
    key = _shared.hget(f"{NS}:keys", f"{uid}:{provider}")
    return key.decode() if key is not None else None


def tell_user(notice: KeyNotice) -> None:
    """The user hook: a push notification, played by a list on the shared Redis."""
    mode = os.environ.get("BYOK_TEST_HOOK", "ok")
    attempt = _shared.incr(f"{NS}:hook-attempts")
    if mode == "fail-first" and attempt == 1:
        raise ConnectionError("the push service is down")
    if mode == "hang":
        _shared.rpush(f"{NS}:hook-started", os.getpid())
        time.sleep(600)
    _shared.rpush(f"{NS}:hook", json.dumps({**notice.as_dict(), "pid": os.getpid()}))


KEY_HEALTH = KeyHealth(
    os.environ.get("BYOK_TEST_HEALTH_URL", SHARED_URL),
    notify=tell_user,
    prefix=f"{NS}:health:",
    **json.loads(os.environ.get("BYOK_TEST_HEALTH", "{}")),
)
KEY_STORE = SealedKeyStore(SHARED_URL, prefix=f"{NS}:sealed:")


def call_openai() -> str:
    """A task's LLM call on the user's key (the platform's when the context does not make OpenAI theirs)."""
    started = time.monotonic()
    try:
        key = current_key("openai") or PLATFORM_KEY
        _shared.rpush(f"{NS}:key-seconds", time.monotonic() - started)  # what key health adds before the call
        client = openai.OpenAI(api_key=key, max_retries=0, timeout=10)
        with llm_call("openai", model="gpt-4o-mini", feature="summarize"):
            client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
        return "ok"
    finally:
        global _body_ended
        _body_ended = time.monotonic()


def _init_sentry(integrations: list[Any]) -> None:
    dsn = os.environ.get("SENTRY_DSN")
    if not dsn:
        return
    import sentry_sdk

    from byok_tasks.sentry import ByokIntegration

    window = float(os.environ.get("BYOK_TEST_STORM_WINDOW", "600"))
    sentry_sdk.init(
        dsn=dsn,
        integrations=[ByokIntegration(storm_window=window), *integrations],
        auto_enabling_integrations=False,
        release=os.environ.get("SENTRY_RELEASE"),
        shutdown_timeout=2,
    )


if os.environ.get("BROKER_URL"):
    from celery import Celery, signals
    from sentry_sdk.integrations.celery import CeleryIntegration

    import byok_tasks.celery

    app = Celery("byok_health_test", broker=os.environ["BROKER_URL"], backend=os.environ["RESULT_BACKEND"])
    app.conf.update(
        task_default_queue=os.environ["BYOK_TEST_QUEUE"],
        result_expires=600,
        broker_connection_retry_on_startup=True,
        worker_prefetch_multiplier=1,
    )
    _init_sentry([CeleryIntegration()])
    byok_tasks.celery.install(app, key_store=KEY_STORE, resolver=resolve, resolver_ttl=0, key_health=KEY_HEALTH)
    summarize = app.task(name="health.summarize")(call_openai)

    @signals.task_postrun.connect(weak=False)
    def _stop_clock(**_: Any) -> None:
        # From the end of the task's body to the end of the task: its failure path (the
        # record, the hook's claim, the Sentry event and its storm budget).
        _shared.rpush(f"{NS}:after-seconds", time.monotonic() - _body_ended)
