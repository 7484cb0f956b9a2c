"""``byok_tasks.dramatiq.llm_retry`` on a real Dramatiq worker: what is retried, when, and what is reported.

The actors (tests/apps/dramatiq_app.py) call the real OpenAI SDK, its own retries off,
against a scripted loopback provider that counts the calls and notes when each arrived;
the worker sends to a loopback Sentry. Each test runs under a user of its own.
"""

from __future__ import annotations

from typing import Any

import pytest

from byok_tasks import byok_context
from byok_tasks.testing.sentry_collector import SentryCollector
from tests.support.dramatiq_worker import (  # noqa: F401
    DramatiqWorker,
    DramatiqWorkerFactory,
    dramatiq_worker_factory_fixture,
    runs,
    seen,
)
from tests.support.ids import new_uid
from tests.support.processes import failure_records
from tests.support.scripted_provider import (  # noqa: F401
    INVALID_KEY,
    OK,
    OVERLOADED,
    RATE_LIMITED,
    ScriptedProvider,
    scripted_provider_fixture,
)
from tests.support.sentry import QUIET, events_where, tags

# Dramatiq's delayed messages wait on a delay queue that the worker's consumer checks as it
# polls (every 100 ms in the test workers: tests/support/dramatiq_worker.py); a loaded
# machine adds to that.
LATE = 1.5


@pytest.fixture(scope="module")
def worker(dramatiq_worker_factory: DramatiqWorkerFactory, sentry_collector: SentryCollector) -> DramatiqWorker:
    return dramatiq_worker_factory("redis", env={"SENTRY_DSN": sentry_collector.dsn})


def send(worker: DramatiqWorker, actor: str, provider: ScriptedProvider, uid: str) -> Any:
    with byok_context(uid, ["openai"]):
        return worker.actors[actor].send(uid, provider.base_url)


def events_of(collector: SentryCollector, uid: str) -> list[dict[str, Any]]:
    return [event for event in collector.quiet_for(QUIET) if tags(event).get("byok.uid") == uid]


def test_rate_limit_with_retry_after_is_retried_after_that_wait_then_succeeds(
    worker: DramatiqWorker, scripted_provider: ScriptedProvider, sentry_collector: SentryCollector
) -> None:
    scripted_provider.script(RATE_LIMITED, OK)  # retry-after: 1; the policy's own backoff is 0.1 s
    send(worker, "summarize_with_llm_retry", scripted_provider, uid := new_uid("dq-retry"))
    assert seen(worker, uid) == "summary"
    [wait] = scripted_provider.waits()
    assert 1.0 <= wait <= 1.0 + LATE
    assert failure_records(worker, uid) == []
    assert events_of(sentry_collector, uid) == []


def test_invalid_key_is_not_retried(
    worker: DramatiqWorker, scripted_provider: ScriptedProvider, sentry_collector: SentryCollector
) -> None:
    scripted_provider.script(INVALID_KEY)
    message = send(worker, "summarize_with_llm_retry", scripted_provider, uid := new_uid("dq-retry"))
    [run] = runs(worker, message)
    assert run["exception"].startswith("AuthenticationError")
    assert scripted_provider.calls == 1
    assert len(failure_records(worker, uid, expect=1)) == 1
    [event] = events_where(sentry_collector, uid=uid, expect=1)
    assert tags(event)["llm.reason"] == "invalid_key"


def test_only_the_final_failure_is_logged_and_reported(
    worker: DramatiqWorker, scripted_provider: ScriptedProvider, sentry_collector: SentryCollector
) -> None:
    scripted_provider.script(OVERLOADED)
    message = send(worker, "summarize_with_llm_retry", scripted_provider, uid := new_uid("dq-retry"))
    assert [run["retries"] for run in runs(worker, message)] == [0, 1, 2, 3]
    assert scripted_provider.calls == 1 + 3
    assert len(failure_records(worker, uid, expect=1)) == 1
    [event] = events_where(sentry_collector, uid=uid, expect=1)
    assert tags(event)["llm.reason"] == "overloaded"


def test_retryable_failure_that_outlasts_the_actors_own_max_retries_is_reported_once(
    worker: DramatiqWorker, scripted_provider: ScriptedProvider, sentry_collector: SentryCollector
) -> None:
    scripted_provider.script(OVERLOADED)
    message = send(worker, "summarize_with_llm_retry_capped", scripted_provider, uid := new_uid("dq-retry"))
    assert len(runs(worker, message)) == 2  # the actor's max_retries=1 ends it before the policy's 3
    assert len(failure_records(worker, uid, expect=1)) == 1
    [event] = events_where(sentry_collector, uid=uid, expect=1)
    assert tags(event)["llm.reason"] == "overloaded"
