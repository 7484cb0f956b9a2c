"""The BYOK context travels from the enqueuing process into real ``rq worker`` processes, however a job is made."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import rq.decorators
import rq.worker
from rq import Callback, Queue, Retry
from rq.job import Job

from byok_tasks import ByokContext, byok_context
from byok_tasks.header import HeaderCodec
from tests.apps import rq_jobs
from tests.support.celery_worker import SECRET
from tests.support.rq_worker import (  # noqa: F401
    KINDS,
    RqWorker,
    RqWorkerFactory,
    finished,
    recorded,
    result_of,
    rq_worker_factory_fixture,
    start_rq_worker,
)

ALICE = ["alice", ["anthropic", "openai"]]


@pytest.fixture(params=KINDS)
def worker(request: pytest.FixtureRequest, rq_worker_factory: RqWorkerFactory) -> RqWorker:
    return rq_worker_factory(request.param)


@pytest.fixture(params=KINDS)
def scheduling_worker(request: pytest.FixtureRequest, rq_worker_factory: RqWorkerFactory) -> RqWorker:
    return rq_worker_factory(request.param, with_scheduler=True)


def as_alice() -> Any:
    return byok_context("alice", ["openai", "anthropic"])


def test_enqueue_carries_the_context(worker: RqWorker) -> None:
    with as_alice():
        job = worker.queue.enqueue(rq_jobs.whoami)
    assert result_of(job) == ALICE


def test_job_enqueued_without_context_sees_none(worker: RqWorker) -> None:
    assert result_of(worker.queue.enqueue(rq_jobs.whoami)) is None


def test_enqueue_call_carries_the_context(worker: RqWorker) -> None:
    with as_alice():
        job = worker.queue.enqueue_call(rq_jobs.whoami)
    assert result_of(job) == ALICE


def test_enqueue_by_function_path_carries_the_context(worker: RqWorker) -> None:
    with as_alice():
        job = worker.queue.enqueue("tests.apps.rq_jobs.whoami")
    assert result_of(job) == ALICE


def test_enqueue_many_carries_the_context_it_is_called_under(worker: RqWorker) -> None:
    with as_alice():
        first = Queue.prepare_data(rq_jobs.whoami)
    with byok_context("bob", ["groq"]):
        # prepare_data only gathers arguments; enqueue_many makes the jobs, under bob's context.
        jobs = worker.queue.enqueue_many([first, Queue.prepare_data(rq_jobs.whoami)])
    assert [result_of(job) for job in jobs] == [["bob", ["groq"]]] * 2


def test_enqueue_many_under_a_context_and_without(worker: RqWorker) -> None:
    with as_alice():
        with_context = worker.queue.enqueue_many([Queue.prepare_data(rq_jobs.whoami) for _ in range(3)])
    without = worker.queue.enqueue_many([Queue.prepare_data(rq_jobs.whoami) for _ in range(3)])
    assert [result_of(job) for job in with_context + without] == [ALICE] * 3 + [None] * 3


def test_job_decorator_delay_carries_the_context(worker: RqWorker) -> None:
    delayed = rq.decorators.job(worker.queue_name, connection=worker.connection)(rq_jobs.whoami)
    with as_alice():
        job = delayed.delay()
    assert result_of(job) == ALICE


def test_enqueue_in_carries_the_context(scheduling_worker: RqWorker) -> None:
    with as_alice():
        job = scheduling_worker.queue.enqueue_in(timedelta(seconds=1), rq_jobs.whoami)
    assert result_of(job) == ALICE


def test_enqueue_at_carries_the_context(scheduling_worker: RqWorker) -> None:
    with as_alice():
        job = scheduling_worker.queue.enqueue_at(datetime.now(timezone.utc) + timedelta(seconds=1), rq_jobs.whoami)
    assert result_of(job) == ALICE


def test_dependent_job_runs_with_its_context_after_its_parent(worker: RqWorker) -> None:
    with byok_context("bob", ["groq"]):
        parent = worker.queue.enqueue(rq_jobs.fail_then_whoami, uuid.uuid4().hex, 0)
    with as_alice():
        child = worker.queue.enqueue(rq_jobs.whoami, depends_on=parent)
    assert result_of(child) == ALICE
    assert result_of(parent)[0] == ["bob", ["groq"]]


def test_retry_keeps_the_context_until_the_third_run(worker: RqWorker) -> None:
    with as_alice():
        job = worker.queue.enqueue(rq_jobs.fail_then_whoami, uuid.uuid4().hex, 2, retry=Retry(max=3))
    assert result_of(job) == [ALICE, 3]


def test_retry_after_an_interval_keeps_the_context(scheduling_worker: RqWorker) -> None:
    with as_alice():
        job = scheduling_worker.queue.enqueue(
            rq_jobs.fail_then_whoami, uuid.uuid4().hex, 1, retry=Retry(max=2, interval=1)
        )
    assert result_of(job) == [ALICE, 2]


def test_job_enqueued_from_a_job_inherits_the_context(worker: RqWorker) -> None:
    with as_alice():
        parent = worker.queue.enqueue(rq_jobs.spawn_whoami)
    child = Job.fetch(result_of(parent), connection=worker.connection)
    assert result_of(child) == ALICE


def test_success_callback_sees_the_context(worker: RqWorker) -> None:
    with as_alice():
        job = worker.queue.enqueue(rq_jobs.whoami, on_success=Callback(rq_jobs.on_success_record))
    assert recorded(worker.connection, job.id, "on_success") == ALICE


def test_failure_callback_sees_the_context(worker: RqWorker) -> None:
    with as_alice():
        job = worker.queue.enqueue(rq_jobs.fail, on_failure=Callback(rq_jobs.on_failure_record))
    assert recorded(worker.connection, job.id, "on_failure") == ALICE


def test_explicit_header_from_the_caller_is_not_overwritten(worker: RqWorker) -> None:
    bob = HeaderCodec.configure(SECRET).encode(ByokContext("bob", frozenset({"groq"})))
    with as_alice():
        job = worker.queue.enqueue(rq_jobs.whoami, meta={"byok": bob})
    assert result_of(job) == ["bob", ["groq"]]


def test_required_job_runs_under_its_context(worker: RqWorker) -> None:
    with as_alice():
        job = worker.queue.enqueue(rq_jobs.whoami_required)
    assert result_of(job) == ALICE


def test_required_job_without_context_is_refused_once_not_retried(worker: RqWorker) -> None:
    job = finished(worker.queue.enqueue(rq_jobs.whoami_required, retry=Retry(max=3)))
    result = job.latest_result()
    assert result is not None and result.exc_string is not None
    assert "ByokContextRequired" in result.exc_string
    assert "requires a BYOK context: none was set where it was enqueued" in result.exc_string
    # RQ logs the exception of every failed run: one run, no retry.
    assert worker.log().count(f"[{job.id}] requires a BYOK context") == 1


@pytest.mark.skipif(not hasattr(rq.worker, "SpawnWorker"), reason="SpawnWorker came with RQ 2.6")
def test_spawn_worker_refuses_to_start_rather_than_run_jobs_without_their_context(
    redis_url: str, worker_logs: Path
) -> None:
    with pytest.raises(RuntimeError, match="did not start") as refused:
        start_rq_worker(redis_url, "spawn", worker_logs)
    assert "byok_tasks.rq cannot restore BYOK contexts in SpawnWorker" in str(refused.value)
