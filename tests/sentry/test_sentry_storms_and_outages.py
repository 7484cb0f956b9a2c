"""A flood of one user's failures costs a handful of events; a Sentry outage costs nothing.

Real Celery workers with a real sentry-sdk; the tasks call the real OpenAI SDK against
the loopback sandbox.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from celery.result import ResultSet

from byok_tasks import byok_context
from byok_tasks.testing.provider_server import closed_port_url
from byok_tasks.testing.sentry_collector import Behaviour, SentryCollector
from tests.support.sentry import events_where, tags

FAILURES = 10_000
STORM_WINDOW = 10.0


@pytest.mark.timeout(900)
def test_ten_thousand_failures_of_one_user_cost_one_event_per_window(
    worker_factory: Any, redis_url: str, provider_sandbox: Any, sentry_collector: SentryCollector, tmp_path: Any
) -> None:
    worker = worker_factory(
        redis_url,
        "threads",
        env={
            "SENTRY_DSN": sentry_collector.dsn,
            "OPENAI_BASE_URL": f"{provider_sandbox.url}/v1",
            "BYOK_TEST_STORM_WINDOW": str(STORM_WINDOW),
        },
    )
    uid = f"revoked-{uuid.uuid4().hex[:8]}"
    started = time.monotonic()
    with byok_context(uid, ["openai"]):
        results = ResultSet([worker.app.send_task("llm.summarize", ("invalid",)) for _ in range(FAILURES)])
    results.join(timeout=600, propagate=False)
    # One more failure once the window has passed: it carries the count held back before it.
    time.sleep(STORM_WINDOW)
    with byok_context(uid, ["openai"]):
        worker.app.send_task("llm.summarize", ("invalid",)).get(timeout=30, propagate=False)
    elapsed = time.monotonic() - started

    events = events_where(sentry_collector, uid=uid, expect=2)
    suppressed = [int(tags(event).get("llm.suppressed", 0)) for event in events]
    assert len(events) + sum(suppressed) == FAILURES + 1  # every failure sent or counted
    assert len(events) <= elapsed / STORM_WINDOW + 1  # the budget: one event per window
    assert suppressed[-1] > 0
    # ... and every failure still has its structured log line.
    assert worker.log().count(f"uid='{uid}'") == FAILURES + 1


@pytest.fixture(scope="module")
def unhealthy_sentry() -> Iterator[SentryCollector]:
    with SentryCollector(slow_seconds=10) as collector:
        yield collector


OUTAGES: list[Behaviour | str] = ["connection refused", "error", "rate_limited", "slow"]


@pytest.mark.parametrize("outage", OUTAGES)
def test_tasks_finish_as_usual_while_sentry_is_down(
    outage: str, worker_factory: Any, redis_url: str, provider_sandbox: Any, unhealthy_sentry: SentryCollector
) -> None:
    if outage == "connection refused":
        dsn = closed_port_url().replace("http://", "http://byok-public-key@") + "/1"
    else:
        dsn = unhealthy_sentry.dsn
        unhealthy_sentry.behaviour = outage  # type: ignore[assignment]
    worker = worker_factory(
        redis_url, "threads", env={"SENTRY_DSN": dsn, "OPENAI_BASE_URL": f"{provider_sandbox.url}/v1"}
    )
    try:
        with byok_context(f"user-{uuid.uuid4().hex[:8]}", ["openai"]):
            failing = [worker.app.send_task("llm.summarize", ("invalid",)) for _ in range(100)]
            succeeding = [worker.app.send_task("llm.summarize", ("ok",)) for _ in range(100)]
        # A generous bound that only a stalled worker misses: 200 tasks take about a second.
        ResultSet(failing + succeeding).join(timeout=60, propagate=False)
    finally:
        unhealthy_sentry.behaviour = "ok"
    assert [result.state for result in failing] == ["FAILURE"] * 100
    assert [result.result for result in succeeding] == ["A short summary from the sandbox."] * 100
    assert worker.alive()
