"""byok-tasks' RQ hooks never raise where RQ itself would not, and the worker says how it is set up.

fakeredis stands in for Redis: these are about what runs in this process.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator

import fakeredis
import pytest
from rq import Queue, SimpleWorker

from tests.apps import rq_jobs
from tests.support.celery_worker import SECRET
from tests.support.rq_worker import install_publisher


@pytest.fixture
def queue() -> Iterator[Queue]:
    install_publisher()
    connection = fakeredis.FakeRedis()
    yield Queue("byok-alone", connection=connection)
    connection.close()


@pytest.mark.parametrize("retries_left", ["3", object(), 2.5])
def test_exception_handling_takes_a_job_whose_retries_left_is_not_an_int(queue: Queue, retries_left: object) -> None:
    job = queue.enqueue(rq_jobs.seen)
    job.retries_left = retries_left  # type: ignore[assignment]
    worker = SimpleWorker([queue], connection=queue.connection)
    try:
        raise RuntimeError("the job failed")
    except RuntimeError:
        worker.handle_exception(job, *sys.exc_info())


def test_a_worker_logs_its_settings_once_when_it_starts(queue: Queue, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="byok_tasks.rq"):
        SimpleWorker([queue], connection=queue.connection).work(burst=True)
    [line] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("byok-tasks:")]
    assert "headers signed (HMAC-SHA256)" in line and SECRET not in line
