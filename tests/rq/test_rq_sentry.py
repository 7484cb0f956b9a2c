"""A job's final LLM failure reaches Sentry once, tagged as for Celery, with sentry-sdk's RQ integration on or off.

The workers run the real OpenAI SDK against the loopback sandbox with a user's invalid
key, sealed for them by this process, and a real sentry-sdk sends to the loopback
collector. Each worker has its own Sentry release, the name of its queue, so that the
events of other tests sharing the collector are left out.
"""

from __future__ import annotations

import time
import uuid
from datetime import datetime
from typing import Any

import pytest
from rq import Retry
from rq.job import JobStatus

from byok_tasks import byok_context
from byok_tasks.keys import SealedKeyStore
from byok_tasks.testing.sandbox import ProviderSandbox, sandbox_key
from byok_tasks.testing.sentry_collector import SentryCollector
from tests.apps import rq_jobs
from tests.support.rq_worker import (  # noqa: F401
    KINDS,
    RqWorker,
    RqWorkerFactory,
    finished,
    result_of,
    rq_worker_factory_fixture,
    sealed_key_store_fixture,
    sealed_keys_env,
)

# The workers send to Sentry as slowly as over the internet (see tests/apps/rq_settings.py).
LATENCY = 0.3
# Long enough for a worker's events to arrive on a loaded machine.
QUIET = 3.0
FEATURE = "tests.apps.rq_jobs.summarize"


@pytest.fixture(params=[(kind, rq) for kind in KINDS for rq in ("rq-integration", "no-rq-integration")], ids=str)
def worker(
    request: pytest.FixtureRequest,
    rq_worker_factory: RqWorkerFactory,
    sentry_collector: SentryCollector,
    sealed_key_store: SealedKeyStore,
) -> RqWorker:
    kind, integration = request.param
    env = {
        **sealed_keys_env(),
        "SENTRY_DSN": sentry_collector.dsn,
        "BYOK_TEST_SENTRY_LATENCY": str(LATENCY),
        "BYOK_TEST_SENTRY_RQ": "on" if integration == "rq-integration" else "off",
    }
    worker: RqWorker = rq_worker_factory(kind, env=env)
    return worker


def events_of(worker: RqWorker, collector: SentryCollector, since: float) -> list[dict[str, Any]]:
    """The events this worker sent since ``since``, once the collector has been quiet for a while."""
    return [
        event
        for event in collector.quiet_for(QUIET)
        if event.get("release") == worker.release and _timestamp(event) >= since
    ]


def _timestamp(event: dict[str, Any]) -> float:
    value = event["timestamp"]
    return float(value) if isinstance(value, (int, float)) else datetime.fromisoformat(value).timestamp()


def test_invalid_user_key_sends_one_tagged_event(
    worker: RqWorker, provider_sandbox: ProviderSandbox, sentry_collector: SentryCollector
) -> None:
    uid, key, since = f"rq-sentry-{uuid.uuid4().hex[:8]}", sandbox_key("openai", "invalid"), time.time()
    with byok_context(uid, keys={"openai": key}):
        job = worker.queue.enqueue(rq_jobs.summarize, provider_sandbox.url + "/v1")
    assert finished(job).get_status() == JobStatus.FAILED
    [event] = events_of(worker, sentry_collector, since)
    assert {name: event["tags"].get(name) for name in ("llm.source", "llm.provider", "llm.reason", "llm.feature")} == {
        "llm.source": "byok",
        "llm.provider": "openai",
        "llm.reason": "invalid_key",
        "llm.feature": FEATURE,
    }
    assert (event["tags"]["byok.uid"], event["user"]["id"]) == (uid, uid)
    assert event["level"] == "warning"
    assert event["fingerprint"] == ["llm", "byok", "openai", "invalid_key", FEATURE]
    assert not any(key.encode() in body for body in sentry_collector.raw)


def test_failure_that_a_retry_recovers_sends_nothing(
    worker: RqWorker, provider_sandbox: ProviderSandbox, sentry_collector: SentryCollector
) -> None:
    uid, since = f"rq-sentry-{uuid.uuid4().hex[:8]}", time.time()
    with byok_context(uid, keys={"openai": sandbox_key("openai", "invalid")}):
        job = worker.queue.enqueue(
            rq_jobs.summarize_after_failures, provider_sandbox.url + "/v1", uuid.uuid4().hex, 1, retry=Retry(max=2)
        )
    assert result_of(job) == "done without the provider"
    assert events_of(worker, sentry_collector, since) == []


def test_failure_of_every_retry_sends_one_event(
    worker: RqWorker, provider_sandbox: ProviderSandbox, sentry_collector: SentryCollector
) -> None:
    uid, marker, since = f"rq-sentry-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex, time.time()
    with byok_context(uid, keys={"openai": sandbox_key("openai", "invalid")}):
        job = worker.queue.enqueue(
            rq_jobs.summarize_after_failures, provider_sandbox.url + "/v1", marker, 99, retry=Retry(max=2)
        )
    assert finished(job).get_status() == JobStatus.FAILED
    assert worker.connection.get(rq_jobs.record_key(marker, "attempts")) == b"3"
    [event] = events_of(worker, sentry_collector, since)
    assert (event["tags"]["byok.uid"], event["tags"]["llm.reason"]) == (uid, "invalid_key")
    assert event["tags"]["llm.feature"] == "tests.apps.rq_jobs.summarize_after_failures"


def test_failure_the_job_reports_and_raises_again_sends_one_event(
    worker: RqWorker, provider_sandbox: ProviderSandbox, sentry_collector: SentryCollector
) -> None:
    uid, since = f"rq-sentry-{uuid.uuid4().hex[:8]}", time.time()
    with byok_context(uid, keys={"openai": sandbox_key("openai", "invalid")}):
        job = worker.queue.enqueue(rq_jobs.summarize_reported_then_raised, provider_sandbox.url + "/v1")
    assert finished(job).get_status() == JobStatus.FAILED
    [event] = events_of(worker, sentry_collector, since)
    assert (event["tags"]["byok.uid"], event["tags"]["llm.feature"]) == (uid, "summary")
    assert event["exception"]["values"][-1]["mechanism"]["handled"] is True
    # Storm control would hide a second event of this user's; the log shows there was none.
    assert worker.log().count(f"uid='{uid}'") == 1


def test_platform_key_failure_sends_one_error_event(
    worker: RqWorker, provider_sandbox: ProviderSandbox, sentry_collector: SentryCollector
) -> None:
    since = time.time()
    job = worker.queue.enqueue(rq_jobs.summarize, provider_sandbox.url + "/v1")
    assert finished(job).get_status() == JobStatus.FAILED
    [event] = events_of(worker, sentry_collector, since)
    assert (event["tags"]["llm.source"], event["tags"]["llm.reason"], event["level"]) == (
        "platform",
        "invalid_key",
        "error",
    )
    assert "byok.uid" not in event["tags"]
    assert not any(rq_jobs.PLATFORM_OPENAI_KEY.encode() in body for body in sentry_collector.raw)
