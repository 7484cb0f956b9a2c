"""A small Celery app that processes conversations with LLMs, run with ``celery -A worker worker``.

Users of a BYOK product bring their own OpenAI or Anthropic key; everyone else runs on
the platform's keys. byok-tasks carries who the task runs for into the worker, gives the
task the right key, and tells a user's key failing from ours failing.

Configuration (environment):
    BROKER_URL / REDIS_URL    the broker; without one, an embedded Redis-protocol server
                              is started on 127.0.0.1:6399, so nothing needs installing
    RESULT_BACKEND            defaults to the broker when it is Redis
    SENTRY_DSN                report failures to Sentry (tagged llm.source, llm.reason, ...)
    METRICS_PORT              serve byok-tasks' Prometheus counters on 127.0.0.1:METRICS_PORT
    OPENAI_API_KEY, ANTHROPIC_API_KEY        the platform's keys
    OPENAI_BASE_URL, ANTHROPIC_BASE_URL      another endpoint (the demo's sandbox)
    BYOK_TASKS_SECRET, BYOK_TASKS_ENCRYPTION_KEY   see the README's configuration table;
                              with either, key health runs on the Redis (the user told once
                              through tell_user, a dead key not called again)
"""

from __future__ import annotations

import logging
import os
from typing import Any

import anthropic
import openai
from celery import Celery, signals

import byok_tasks.celery
from byok_tasks import KeyHealth, KeyNotice, classify, current_key, llm_call
from byok_tasks.header import SECRET_ENV
from byok_tasks.keys import ENCRYPTION_KEY_ENV, SealedKeyStore


def _broker_url() -> str:
    url = os.environ.get("BROKER_URL") or os.environ.get("REDIS_URL")
    if url:
        return url
    from byok_tasks.testing import embedded_redis

    return embedded_redis.ensure()


BROKER_URL = _broker_url()
RESULT_BACKEND = os.environ.get("RESULT_BACKEND") or (BROKER_URL if BROKER_URL.startswith("redis") else "rpc://")

app = Celery("worker", broker=BROKER_URL, backend=RESULT_BACKEND)
app.conf.update(task_acks_late=True, task_reject_on_worker_lost=True, broker_connection_retry_on_startup=True)

if os.environ.get("SENTRY_DSN"):
    import sentry_sdk

    from byok_tasks.sentry import ByokIntegration

    sentry_sdk.init(dsn=os.environ["SENTRY_DSN"], integrations=[ByokIntegration()])

if os.environ.get("METRICS_PORT"):
    import byok_tasks.prometheus

    byok_tasks.prometheus.instrument()

    @signals.worker_init.connect(weak=False)
    def _serve_metrics(**_: Any) -> None:
        # The worker's main process; prefork children would count through PROMETHEUS_MULTIPROC_DIR.
        byok_tasks.prometheus.start_http_server(int(os.environ["METRICS_PORT"]), "127.0.0.1")


logger = logging.getLogger("worker")
REDIS_URL = os.environ.get("REDIS_URL", BROKER_URL)


def tell_user(notice: KeyNotice) -> None:
    """Key health's hook: called once per user, provider and reason (a day) across the fleet."""
    # A real app sends a push notification or an email here; the demo prints the call.
    logger.warning(
        "tell_user(uid=%r, provider=%r, reason=%r, failures=%d)",
        notice.uid,
        notice.provider,
        notice.reason,
        notice.failures,
    )


# Key health needs a Redis and a secret to fingerprint keys with (never the key itself).
# The embedded server answers slower than a real Redis: its bound is raised from 50 ms.
KEY_HEALTH = (
    KeyHealth(REDIS_URL, notify=tell_user, timeout=0.5)
    if REDIS_URL.startswith("redis") and (os.environ.get(SECRET_ENV) or os.environ.get(ENCRYPTION_KEY_ENV))
    else None
)

byok_tasks.celery.install(
    app,
    # With a secret (BYOK_TASKS_SECRET), an unsigned header is not trusted: anyone who can
    # write to the broker could otherwise name any user.
    require_signature=bool(os.environ.get(SECRET_ENV)),
    # Keys that arrive with a web request travel to the worker sealed in Redis, never in the message.
    key_store=SealedKeyStore(REDIS_URL) if os.environ.get(ENCRYPTION_KEY_ENV) else None,
    key_health=KEY_HEALTH,
)

SUMMARY_MODEL = "gpt-4o-mini"
ACTIONS_MODEL = "claude-sonnet-5"
# Waits between retries are capped so that the demo ends within a minute; a real app would
# honour the provider's retry-after up to a minute or so.
LONGEST_RETRY_WAIT = 2.0


# A client per call, because the key differs per user; one connection pool for all of
# them, because building an HTTP client (its TLS context) costs tens of milliseconds.
_openai_http = openai.DefaultHttpxClient()
_anthropic_http = anthropic.DefaultHttpxClient()


def openai_client() -> openai.OpenAI:
    """The user's own key when this task runs for a BYOK user of OpenAI, else the platform's."""
    return openai.OpenAI(
        api_key=current_key("openai") or os.environ.get("OPENAI_API_KEY", "sk-platform-not-configured"),
        base_url=os.environ.get("OPENAI_BASE_URL"),
        max_retries=0,  # Celery retries what is worth retrying, with the task's context
        http_client=_openai_http,
    )


def anthropic_client() -> anthropic.Anthropic:
    return anthropic.Anthropic(
        api_key=current_key("anthropic") or os.environ.get("ANTHROPIC_API_KEY", "sk-ant-platform-not-configured"),
        base_url=os.environ.get("ANTHROPIC_BASE_URL"),
        max_retries=0,
        http_client=_anthropic_http,
    )


@app.task(bind=True, max_retries=2)
def summarize_conversation(self: Any, conversation_id: str, transcript: str) -> str:
    """Summarise a conversation with OpenAI; retry only what passes by itself."""
    try:
        with llm_call("openai", model=SUMMARY_MODEL, feature="summarize_conversation"):
            completion = openai_client().chat.completions.create(
                model=SUMMARY_MODEL,
                messages=[
                    {"role": "system", "content": "Summarise this conversation in two sentences."},
                    {"role": "user", "content": transcript},
                ],
            )
    except openai.APIError as exc:
        # A rate limit or an outage passes; an invalid key or exhausted credits (also a 429
        # at OpenAI) need a person. The classification tells them apart, the status cannot.
        failure = classify(exc)
        if failure is not None and failure.retryable:
            wait = min(failure.retry_after or 2.0**self.request.retries, LONGEST_RETRY_WAIT)
            raise self.retry(exc=exc, countdown=wait) from None
        raise
    return completion.choices[0].message.content or ""


@app.task
def extract_action_items(conversation_id: str, transcript: str) -> str:
    """List the action items of a conversation with Anthropic."""
    with llm_call("anthropic", model=ACTIONS_MODEL, feature="extract_action_items"):
        message = anthropic_client().messages.create(
            model=ACTIONS_MODEL,
            max_tokens=300,
            messages=[{"role": "user", "content": f"List the action items:\n\n{transcript}"}],
        )
    return "".join(block.text for block in message.content if block.type == "text")


@app.task(byok_required=True)
def rewrite_in_users_voice(conversation_id: str, text: str) -> str:
    """A feature only for BYOK users: without a BYOK context it is refused, not run on our key."""
    with llm_call("openai", model=SUMMARY_MODEL, feature="rewrite_in_users_voice"):
        completion = openai_client().chat.completions.create(
            model=SUMMARY_MODEL, messages=[{"role": "user", "content": f"Rewrite in my voice: {text}"}]
        )
    return completion.choices[0].message.content or ""
