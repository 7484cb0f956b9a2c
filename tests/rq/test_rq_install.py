"""install() and the enqueuing side, with fakeredis and an in-process ``SimpleWorker``.

fakeredis stands in for Redis here because these tests are about this process alone:
what a job carries when it is made, and what runs it in this same process.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import fakeredis
import pytest
from rq import Queue, SimpleWorker
from rq.job import Job, JobStatus

import byok_tasks.rq
from byok_tasks import ByokContextRequired, ByokKeyUnavailable, byok_context
from byok_tasks import settings as byok_settings
from tests.apps import rq_jobs
from tests.support.celery_worker import SECRET
from tests.support.rq_worker import install_publisher


@pytest.fixture
def queue() -> Iterator[Queue]:
    install_publisher()
    connection = fakeredis.FakeRedis()
    yield Queue("byok-unit", connection=connection)
    connection.close()


def work(queue: Queue) -> None:
    SimpleWorker([queue], connection=queue.connection).work(burst=True)


def header_fields(job: Job) -> dict[str, Any]:
    payload = Job.fetch(job.id, connection=job.connection).meta["byok"].split(".")[1]
    fields: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return fields


def test_install_twice_with_the_same_settings_changes_nothing(queue: Queue) -> None:
    wrapped = (Job.create, Job.perform, Queue.schedule_job, SimpleWorker.perform_job, SimpleWorker.handle_exception)
    byok_tasks.rq.install(secret=SECRET)
    assert (Job.create, Job.perform, Queue.schedule_job, SimpleWorker.perform_job, SimpleWorker.handle_exception) == (
        wrapped
    )


def test_install_again_with_another_secret_is_an_error(queue: Queue) -> None:
    with pytest.raises(ValueError, match="already called in this process with other settings"):
        byok_tasks.rq.install(secret="another-secret")


def test_meta_reused_for_two_users_jobs_carries_each_users_context(queue: Queue) -> None:
    meta = {"tenant": "acme"}
    with byok_context("alice", ["openai"]):
        alice = queue.enqueue(rq_jobs.whoami, meta=meta)
    with byok_context("bob", ["groq"]):
        bob = queue.enqueue(rq_jobs.whoami, meta=meta)
    work(queue)
    assert [alice.return_value(), bob.return_value()] == [["alice", ["openai"]], ["bob", ["groq"]]]
    assert meta == {"tenant": "acme"}


def test_scheduled_job_header_allows_for_its_delay(queue: Queue) -> None:
    with byok_context("alice", ["openai"]):
        job = queue.enqueue_at(datetime.now(timezone.utc) + timedelta(days=3), rq_jobs.whoami)
    assert 3 * 24 * 3600 - 60 < header_fields(job)["d"] <= 3 * 24 * 3600 + 1


def test_job_enqueued_without_context_runs_without_the_workers_own(queue: Queue) -> None:
    job = queue.enqueue(rq_jobs.whoami)
    with byok_context("bob", ["groq"]):
        work(queue)
    assert job.return_value() is None


def test_context_is_reset_after_an_in_process_job(queue: Queue) -> None:
    with byok_context("alice", ["openai"]):
        queue.enqueue(rq_jobs.whoami)
    work(queue)
    assert byok_tasks.current_context() is None


def test_synchronous_queue_runs_the_job_in_the_callers_context(queue: Queue) -> None:
    sync = Queue("byok-unit-sync", connection=queue.connection, is_async=False)
    with byok_context("alice", ["openai"]):
        job = sync.enqueue(rq_jobs.whoami_required)
    assert job.return_value() == ["alice", ["openai"]]


def test_synchronous_queue_refuses_a_required_job_without_context(queue: Queue) -> None:
    sync = Queue("byok-unit-sync", connection=queue.connection, is_async=False)
    job = sync.enqueue(rq_jobs.whoami_required)
    assert job.get_status() == JobStatus.FAILED
    result = job.latest_result()
    assert result is not None and ByokContextRequired.__name__ in str(result.exc_string)


def test_keys_without_a_key_store_are_refused_at_enqueue(queue: Queue, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(byok_settings.current(), "key_store", None)
    with (
        byok_context("alice", keys={"openai": "sk-proj-ok-unit"}),
        pytest.raises(ByokKeyUnavailable, match="need a SealedKeyStore"),
    ):
        queue.enqueue(rq_jobs.key_fingerprint, "openai")
    assert queue.count == 0
