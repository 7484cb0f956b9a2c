"""The Dramatiq app of the test workers: ``python -m dramatiq tests.apps.dramatiq_app``.

Imported with ``BYOK_TEST_DQ_BROKER_URL`` set (tests/support/dramatiq_worker.py sets it
and the rest of the environment), the module is a worker's app: a Redis or RabbitMQ
broker with ``ByokMiddleware`` first, and the actors of :func:`declare` on the worker's
queue. The test process calls :func:`declare` too, on a broker of its own, to send.

What an actor saw is pushed, as JSON, to the Redis list ``byok-test-dq:<marker>:<what>``;
every run of every message is pushed to ``byok-test-dq:runs:<message id>`` by
:class:`Observer`, the outermost middleware (so it also sees what outlives a message).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from typing import Any

import dramatiq
import openai
import redis
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import AsyncIO, Middleware

import byok_tasks.dramatiq
from byok_tasks import current_context, current_key, llm_call
from byok_tasks.keys import ENCRYPTION_KEY_ENV, SealedKeyStore

# The platform's own key, for messages without a user's: the sandbox refuses it (byok_tasks/testing/sandbox.py).
PLATFORM_OPENAI_KEY = "sk-platform-0123456789abcdefghijklmnopqrstuvwxyz"
# Not a key: the scripted provider of the retry tests does not look at it.
RETRY_API_KEY = "sk-test-retry-not-a-key"
# Small backoffs keep the retries of Dramatiq's own Retries middleware short.
BACKOFF_MS = {"min_backoff": 100, "max_backoff": 200}
RECORD_TTL = 600


def make_broker(url: str) -> dramatiq.Broker:
    if url.startswith("redis"):
        return RedisBroker(url=url)
    # Kombu's amqp://host:5672// is pika's amqp://host:5672/%2F: the default virtual host, "/".
    return RabbitmqBroker(url=url[:-1] + "%2F" if url.endswith("//") else url)


def add_byok(broker: dramatiq.Broker, **options: Any) -> None:
    """``ByokMiddleware`` first, as the README says: before any actor is declared."""
    broker.add_middleware(byok_tasks.dramatiq.ByokMiddleware(**options), before=type(broker.middleware[0]))


def record_key(marker: str, what: str) -> str:
    return f"byok-test-dq:{marker}:{what}"


def runs_key(message_id: str) -> str:
    return f"byok-test-dq:runs:{message_id}"


def leaks_key(queue: str) -> str:
    return f"byok-test-dq:{queue}:leaked"


def seen() -> list[Any] | None:
    context = current_context()
    return None if context is None else [context.uid, sorted(context.providers)]


class Observer(Middleware):
    """The outermost middleware: records each run's outcome, once Retries has decided, and
    counts the messages before or after which a BYOK context was in force in the thread."""

    def __init__(self, store: redis.Redis, queue: str) -> None:
        self.store, self.queue = store, queue

    def before_process_message(self, broker: Any, message: Any) -> None:
        if current_context() is not None:
            self.store.incr(leaks_key(self.queue))
        message._retries_before = message.options.get("retries", 0)  # Retries counts the run, once it failed

    def after_process_message(
        self, broker: Any, message: Any, *, result: Any = None, exception: BaseException | None = None
    ) -> None:
        if current_context() is not None:
            self.store.incr(leaks_key(self.queue))
        run = {
            "retries": getattr(message, "_retries_before", None),
            "failed": bool(message.failed),
            "exception": None if exception is None else f"{type(exception).__name__}: {exception}",
        }
        self.store.rpush(runs_key(message.message_id), json.dumps(run))
        self.store.expire(runs_key(message.message_id), RECORD_TTL)


def declare(broker: dramatiq.Broker, queue: str, store: redis.Redis) -> dict[str, dramatiq.Actor[..., Any]]:
    """The test actors on ``queue`` of ``broker``, by name."""

    def record(marker: str, what: str, value: Any) -> int:
        key = record_key(marker, what)
        count = int(store.rpush(key, json.dumps(value)))
        store.expire(key, RECORD_TTL)
        return count

    def actor(**options: Any) -> Any:
        return dramatiq.actor(broker=broker, queue_name=queue, **options)

    @actor(max_retries=0)
    def whoami(marker: str) -> None:
        record(marker, "seen", seen())

    @actor(max_retries=0)
    async def whoami_async(marker: str) -> None:
        record(marker, "seen", seen())

    @actor(byok_required=True, max_retries=3, **BACKOFF_MS)
    def whoami_required(marker: str) -> None:
        record(marker, "seen", seen())

    @actor(max_retries=3, **BACKOFF_MS)
    def fail_then_whoami(marker: str, failures: int) -> None:
        if record(marker, "attempts", seen()) <= failures:
            raise ConnectionError(f"{marker}: the provider is briefly unreachable")
        record(marker, "seen", seen())

    @actor(max_retries=0)
    def spawn_whoami(marker: str, child: str) -> None:
        whoami.send(child)  # as application code does, from a running actor
        record(marker, "seen", seen())

    @actor(max_retries=0)
    def key_fingerprint(marker: str, provider: str) -> None:
        key = current_key(provider)
        # A digest: what is recorded must not hold the key itself.
        record(marker, "seen", None if key is None else hashlib.sha256(key.encode()).hexdigest())

    def call_openai(base_url: str) -> str:
        client = openai.OpenAI(api_key=current_key("openai") or PLATFORM_OPENAI_KEY, base_url=base_url, max_retries=0)
        reply = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
        return reply.choices[0].message.content or ""

    @actor(max_retries=0)
    def summarize(marker: str, base_url: str) -> None:
        """The user's key, else the platform's; fails for good at the first failure."""
        record(marker, "seen", call_openai(base_url))

    @actor(max_retries=2, **BACKOFF_MS)
    def summarize_after_failures(marker: str, base_url: str, failures: int) -> None:
        """Calls OpenAI (failing with the user's invalid key) on the first ``failures`` runs, then does without."""
        if record(marker, "attempts", seen()) <= failures:
            call_openai(base_url)
        record(marker, "seen", "done without the provider")

    def call_scripted(marker: str, base_url: str) -> None:
        client = openai.OpenAI(api_key=RETRY_API_KEY, base_url=base_url, max_retries=0, timeout=2.0)
        with llm_call("openai", model="gpt-4o-mini", feature=marker):
            reply = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
        record(marker, "seen", reply.choices[0].message.content)

    @actor(**byok_tasks.dramatiq.llm_retry(max_retries=3, backoff=0.1, jitter=False))
    def summarize_with_llm_retry(marker: str, base_url: str) -> None:
        call_scripted(marker, base_url)

    # The actor's own max_retries (1) runs out before the policy's (3).
    @actor(max_retries=1, **byok_tasks.dramatiq.llm_retry(max_retries=3, backoff=0.1, jitter=False))
    def summarize_with_llm_retry_capped(marker: str, base_url: str) -> None:
        call_scripted(marker, base_url)

    return {
        name: value for name, value in locals().items() if isinstance(value, dramatiq.Actor)
    }  # fmt: skip


def _worker_app() -> dramatiq.Broker:
    logging.getLogger("byok_tasks").setLevel(logging.INFO)
    store = redis.Redis.from_url(os.environ["BYOK_TEST_DQ_REDIS_URL"])
    queue = os.environ["BYOK_TEST_QUEUE"]
    broker = make_broker(os.environ["BYOK_TEST_DQ_BROKER_URL"])
    add_byok(
        broker,
        require_signature=bool(os.environ.get("BYOK_TEST_REQUIRE_SIGNATURE")),
        key_store=SealedKeyStore(os.environ["BYOK_TEST_DQ_REDIS_URL"], prefix=os.environ["BYOK_TEST_KEY_PREFIX"])
        if os.environ.get(ENCRYPTION_KEY_ENV)
        else None,
        resolver=(lambda uid, provider: f"sk-proj-resolved-{provider}-{uid}")
        if os.environ.get("BYOK_TEST_RESOLVER")
        else None,
    )
    broker.add_middleware(AsyncIO())  # the event-loop thread of async actors
    # Outside ByokMiddleware: it sees the thread before the context is restored and after it is reset.
    broker.add_middleware(Observer(store, queue), before=type(broker.middleware[0]))
    if os.environ.get("SENTRY_DSN"):
        import sentry_sdk

        from byok_tasks.sentry import ByokIntegration

        sentry_sdk.init(dsn=os.environ["SENTRY_DSN"], integrations=[ByokIntegration()])
    dramatiq.set_broker(broker)
    declare(broker, queue, store)
    return broker


if os.environ.get("BYOK_TEST_DQ_BROKER_URL"):
    broker = _worker_app()
