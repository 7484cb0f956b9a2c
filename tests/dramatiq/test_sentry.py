"""A message's final LLM failure reaches Sentry once, tagged, from a real Dramatiq worker.

The worker runs the real OpenAI SDK against the loopback sandbox with a user's key sealed
by this process, and a real sentry-sdk (``ByokIntegration``) sends to the loopback
collector. Dramatiq logs every failed run before its Retries middleware decides whether
the message runs again: those log lines must not become events.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from byok_tasks import byok_context
from byok_tasks.keys import SealedKeyStore
from byok_tasks.testing.sandbox import ProviderSandbox, sandbox_key
from byok_tasks.testing.sentry_collector import SentryCollector
from tests.apps.dramatiq_app import PLATFORM_OPENAI_KEY
from tests.support.dramatiq_worker import (  # noqa: F401
    DramatiqWorker,
    DramatiqWorkerFactory,
    dramatiq_worker_factory_fixture,
    recorded,
    runs,
    sealed_key_store_fixture,
    sealed_keys_env,
    seen,
)
from tests.support.ids import new_uid
from tests.support.sentry import tags

# Long enough for a worker's events to arrive on a loaded machine.
QUIET = 3.0


@pytest.fixture
def worker(
    dramatiq_worker_factory: DramatiqWorkerFactory, sentry_collector: SentryCollector, sealed_key_store: SealedKeyStore
) -> DramatiqWorker:
    return dramatiq_worker_factory("redis", env={**sealed_keys_env(), "SENTRY_DSN": sentry_collector.dsn})


def events_of(worker: DramatiqWorker, collector: SentryCollector, marker: str) -> list[dict[str, Any]]:
    """The events of this worker that mention ``marker`` anywhere, once the collector has been quiet."""
    return [
        event
        for event in collector.quiet_for(QUIET)
        if event.get("release") == worker.release and marker in json.dumps(event)
    ]


def test_revoked_user_key_sends_one_tagged_event(
    worker: DramatiqWorker, provider_sandbox: ProviderSandbox, sentry_collector: SentryCollector
) -> None:
    uid, key = new_uid("dq-sentry"), sandbox_key("openai", "invalid")
    with byok_context(uid, keys={"openai": key}):
        message = worker.actors["summarize"].send(uid, provider_sandbox.url + "/v1")
    runs(worker, message)
    [event] = events_of(worker, sentry_collector, uid)
    assert {name: tags(event).get(name) for name in ("llm.source", "byok.uid", "llm.provider", "llm.reason")} == {
        "llm.source": "byok",
        "byok.uid": uid,
        "llm.provider": "openai",
        "llm.reason": "invalid_key",
    }
    assert tags(event)["llm.feature"] == "summarize"
    assert not any(key.encode() in body for body in sentry_collector.raw)


def test_failure_of_every_retry_sends_one_event(
    worker: DramatiqWorker, provider_sandbox: ProviderSandbox, sentry_collector: SentryCollector
) -> None:
    uid = new_uid("dq-sentry")
    with byok_context(uid, keys={"openai": sandbox_key("openai", "invalid")}):
        message = worker.actors["summarize_after_failures"].send(uid, provider_sandbox.url + "/v1", 99)
    assert len(runs(worker, message)) == 3  # max_retries=2
    [event] = events_of(worker, sentry_collector, uid)
    assert (tags(event)["byok.uid"], tags(event)["llm.reason"]) == (uid, "invalid_key")


def test_failure_that_a_retry_recovers_sends_nothing(
    worker: DramatiqWorker, provider_sandbox: ProviderSandbox, sentry_collector: SentryCollector
) -> None:
    uid = new_uid("dq-sentry")
    with byok_context(uid, keys={"openai": sandbox_key("openai", "invalid")}):
        worker.actors["summarize_after_failures"].send(uid, provider_sandbox.url + "/v1", 1)
    assert seen(worker, uid) == "done without the provider"
    assert events_of(worker, sentry_collector, uid) == []


def test_platform_key_failure_is_tagged_platform(
    worker: DramatiqWorker, provider_sandbox: ProviderSandbox, sentry_collector: SentryCollector
) -> None:
    message = worker.actors["summarize"].send(uuid.uuid4().hex, provider_sandbox.url + "/v1")
    runs(worker, message)
    [event] = events_of(worker, sentry_collector, message.message_id)
    assert (tags(event)["llm.reason"], event["level"]) == ("invalid_key", "error")
    assert "byok.uid" not in tags(event)
    assert not any(PLATFORM_OPENAI_KEY.encode() in body for body in sentry_collector.raw)
