"""The BYOK context travels from the publisher into real worker processes on real brokers."""

from __future__ import annotations

import os
import signal
import time
import uuid
from typing import Any

import pytest
import redis
import sentry_sdk
from celery import chain, chord, group
from sentry_sdk.integrations.celery import CeleryIntegration

from byok_tasks import ByokContext, byok_context
from byok_tasks.header import HeaderCodec
from tests.support.brokers import BROKERS, broker_for
from tests.support.celery_worker import SECRET
from tests.support.contexts import interleaved_expectations
from tests.support.timing import TIMEOUT

POOLS = ["prefork", "threads", "solo", "gevent"]
ALICE = ["alice", ["anthropic", "openai"]]


@pytest.fixture(params=BROKERS)
def worker(request: pytest.FixtureRequest, worker_factory: Any) -> Any:
    return worker_factory(broker_for(request, request.param), "prefork")


def send(worker: Any, name: str, *args: Any, **options: Any) -> Any:
    return worker.app.tasks[name].apply_async(args, **options)


def test_task_sees_the_context_it_was_enqueued_under(worker: Any) -> None:
    with byok_context("alice", ["openai", "anthropic"]):
        result = send(worker, "whoami")
    assert result.get(timeout=TIMEOUT) == ALICE


def test_task_enqueued_without_context_sees_none(worker: Any) -> None:
    assert send(worker, "whoami").get(timeout=TIMEOUT) is None


def test_self_retry_keeps_the_context(worker: Any) -> None:
    with byok_context("alice", ["openai", "anthropic"]):
        result = send(worker, "retry_then_whoami")
    assert result.get(timeout=TIMEOUT) == [ALICE, 2]


def test_autoretry_keeps_the_context(worker: Any) -> None:
    with byok_context("alice", ["openai", "anthropic"]):
        result = send(worker, "autoretry_then_whoami")
    assert result.get(timeout=TIMEOUT) == [ALICE, 2]


def test_every_chain_step_keeps_the_context(worker: Any) -> None:
    tasks = worker.app.tasks
    with byok_context("alice", ["openai", "anthropic"]):
        result = chain(tasks["start_trail"].s(), tasks["extend_trail"].s(), tasks["extend_trail"].s()).delay()
    assert result.get(timeout=TIMEOUT) == [ALICE, ALICE, ALICE]


def test_every_group_member_keeps_the_context(worker: Any) -> None:
    with byok_context("alice", ["openai", "anthropic"]):
        result = group(worker.app.tasks["whoami"].s() for _ in range(4)).delay()
    assert result.get(timeout=TIMEOUT) == [ALICE] * 4


def test_chord_header_and_callback_keep_the_context(worker: Any) -> None:
    tasks = worker.app.tasks
    with byok_context("alice", ["openai", "anthropic"]):
        result = chord([tasks["whoami"].s() for _ in range(3)], tasks["collect"].s()).delay()
    assert result.get(timeout=TIMEOUT) == {"header": [ALICE] * 3, "callback": ALICE}


def test_task_published_from_a_task_keeps_the_context(worker: Any) -> None:
    with byok_context("alice", ["openai", "anthropic"]):
        child_id = send(worker, "spawn_whoami").get(timeout=TIMEOUT)
    assert worker.app.AsyncResult(child_id).get(timeout=TIMEOUT) == ALICE


def test_redelivery_after_the_worker_child_is_killed_keeps_the_context(worker: Any, redis_url: str) -> None:
    marker = uuid.uuid4().hex
    store = redis.Redis.from_url(redis_url)
    with byok_context("alice", ["openai", "anthropic"]):
        result = send(worker, "crash_once", marker)
    deadline = time.monotonic() + TIMEOUT
    while (pid := store.get(f"byok-test:{marker}:pid")) is None:
        assert time.monotonic() < deadline, "the task never started"
        time.sleep(0.05)
    os.kill(int(pid), signal.SIGKILL)
    assert result.get(timeout=TIMEOUT) == [ALICE, 2]


def test_explicit_header_from_the_caller_is_not_overwritten(worker: Any) -> None:
    bob = HeaderCodec.configure(SECRET).encode(ByokContext("bob", frozenset({"groq"})))
    with byok_context("alice", ["openai"]):
        result = send(worker, "whoami", headers={"byok": bob})
    assert result.get(timeout=TIMEOUT) == ["bob", ["groq"]]


@pytest.mark.parametrize("pool", POOLS)
def test_each_pool_restores_the_context(pool: str, redis_url: str, worker_factory: Any) -> None:
    pool_worker = worker_factory(redis_url, pool)
    with byok_context("alice", ["openai", "anthropic"]):
        result = send(pool_worker, "retry_then_whoami")
    assert result.get(timeout=TIMEOUT) == [ALICE, 2]


@pytest.mark.parametrize("broker", BROKERS)
@pytest.mark.parametrize("pool", POOLS)
def test_no_context_leaks_between_a_thousand_interleaved_tasks(
    pool: str, broker: str, request: pytest.FixtureRequest, worker_factory: Any, redis_url: str
) -> None:
    pool_worker = worker_factory(broker_for(request, broker), pool)
    expected = interleaved_expectations(1000)
    results = []
    for context in expected:
        if context is None:
            results.append(send(pool_worker, "whoami"))
        else:
            with byok_context(context[0], context[1]):
                results.append(send(pool_worker, "whoami"))
    seen = [result.get(timeout=120) for result in results]
    mismatches = [(i, want, got) for i, (want, got) in enumerate(zip(expected, seen, strict=True)) if want != got]
    assert mismatches == []
    # The worker counts every task after which a context was still in force.
    assert redis.Redis.from_url(redis_url).get(f"byok-test:{pool_worker.queue}:leaked") is None


def test_context_survives_sentrys_celery_integration_on_both_sides(
    worker_factory: Any, redis_url: str, sentry_collector: Any
) -> None:
    # sentry-sdk rewrites the headers of every task it sees published, nesting them.
    sentry_worker = worker_factory(redis_url, "prefork", env={"SENTRY_DSN": sentry_collector.dsn})
    sentry_sdk.init(dsn=sentry_collector.dsn, integrations=[CeleryIntegration()], traces_sample_rate=1.0)
    try:
        with byok_context("alice", ["openai", "anthropic"]):
            result = send(sentry_worker, "spawn_whoami")
        child_id = result.get(timeout=TIMEOUT)
    finally:
        sentry_sdk.get_client().close()
        sentry_sdk.init()
    assert sentry_worker.app.AsyncResult(child_id).get(timeout=TIMEOUT) == ALICE
