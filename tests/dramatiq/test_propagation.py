"""The BYOK context travels from the sending process into real ``dramatiq`` workers, on Redis and RabbitMQ."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from byok_tasks import ByokContext, byok_context
from byok_tasks.header import HeaderCodec
from tests.support.celery_worker import SECRET
from tests.support.dramatiq_worker import (  # noqa: F401
    BROKERS,
    DramatiqWorker,
    DramatiqWorkerFactory,
    dramatiq_worker_factory_fixture,
    recorded,
    runs,
    seen,
)

ALICE = ["alice", ["openai"]]


@pytest.fixture(params=BROKERS)
def worker(request: pytest.FixtureRequest, dramatiq_worker_factory: DramatiqWorkerFactory) -> DramatiqWorker:
    return dramatiq_worker_factory(request.param)


def marker() -> str:
    return uuid.uuid4().hex


def as_alice() -> Any:
    return byok_context("alice", ["openai"])


def test_send_carries_the_context(worker: DramatiqWorker) -> None:
    with as_alice():
        worker.actors["whoami"].send(mark := marker())
    assert seen(worker, mark) == ALICE


def test_async_actor_runs_under_the_context(worker: DramatiqWorker) -> None:
    with as_alice():
        worker.actors["whoami_async"].send(mark := marker())
    assert seen(worker, mark) == ALICE


def test_async_actor_sent_without_context_runs_without_one(worker: DramatiqWorker) -> None:
    worker.actors["whoami_async"].send(mark := marker())
    assert seen(worker, mark) is None


def test_message_sent_without_context_runs_without_one(worker: DramatiqWorker) -> None:
    worker.actors["whoami"].send(mark := marker())
    assert seen(worker, mark) is None


def test_send_with_options_carries_the_context(worker: DramatiqWorker) -> None:
    with as_alice():
        worker.actors["whoami"].send_with_options(args=(mark := marker(),), max_retries=1)
    assert seen(worker, mark) == ALICE


def test_delayed_message_keeps_the_context(worker: DramatiqWorker) -> None:
    with as_alice():
        worker.actors["whoami"].send_with_options(args=(mark := marker(),), delay=500)
    assert seen(worker, mark) == ALICE


def test_message_sent_from_a_running_actor_inherits_its_context(worker: DramatiqWorker) -> None:
    with as_alice():
        worker.actors["spawn_whoami"].send(parent := marker(), child := marker())
    assert seen(worker, parent) == ALICE
    assert seen(worker, child) == ALICE


def test_retry_keeps_the_context_until_the_third_run(worker: DramatiqWorker) -> None:
    with as_alice():
        worker.actors["fail_then_whoami"].send(mark := marker(), 2)
    assert recorded(worker, mark, "attempts", count=3) == [ALICE] * 3
    assert seen(worker, mark) == ALICE


def test_reused_message_carries_the_context_of_each_send(worker: DramatiqWorker) -> None:
    # One message object, enqueued under alice, then under bob, then under no one.
    message = worker.actors["whoami"].message(mark := marker())
    broker = worker.actors["whoami"].broker
    with as_alice():
        broker.enqueue(message)
    recorded(worker, mark)
    with byok_context("bob", ["groq"]):
        broker.enqueue(message)
    recorded(worker, mark, count=2)
    broker.enqueue(message)
    assert recorded(worker, mark, count=3) == [ALICE, ["bob", ["groq"]], None]


def test_explicit_header_from_the_sender_is_not_overwritten(worker: DramatiqWorker) -> None:
    bob = HeaderCodec.configure(SECRET).encode(ByokContext("bob", frozenset({"groq"})))
    with as_alice():
        worker.actors["whoami"].send_with_options(args=(mark := marker(),), byok=bob)
    assert seen(worker, mark) == ["bob", ["groq"]]


def test_required_actor_runs_under_its_context(worker: DramatiqWorker) -> None:
    with as_alice():
        worker.actors["whoami_required"].send(mark := marker())
    assert seen(worker, mark) == ALICE


def test_required_actor_without_context_is_refused_once_not_retried(worker: DramatiqWorker) -> None:
    message = worker.actors["whoami_required"].send(marker())
    [run] = runs(worker, message)
    assert run["exception"].startswith("ByokContextRequired: actor whoami_required")
    assert "requires a BYOK context: none was set where it was enqueued" in run["exception"]
