"""byok-tasks' RQ hooks never raise where RQ itself would not, and the worker says how it is set up.

fakeredis stands in for Redis: these are about what runs in this process.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Iterator

import fakeredis
import pytest
from rq import Queue, SimpleWorker

from tests.support.celery_worker import SECRET
from tests.support.processes import ROOT
from tests.support.rq_worker import install_publisher


@pytest.fixture
def queue() -> Iterator[Queue]:
    install_publisher()
    connection = fakeredis.FakeRedis()
    yield Queue("byok-alone", connection=connection)
    connection.close()


# In a fresh interpreter: once any test has called sentry_sdk.init(), sentry-sdk's own RQ
# integration wraps handle_exception too, and it does compare retries_left.
_HANDLE = """
import sys
import fakeredis
from rq import Queue, SimpleWorker
import byok_tasks.rq
from tests.apps import rq_jobs

byok_tasks.rq.install()
queue = Queue("byok-alone", connection=fakeredis.FakeRedis())
job = queue.enqueue(rq_jobs.seen)
job.retries_left = eval(sys.argv[1])
try:
    raise RuntimeError("the job failed")
except RuntimeError:
    SimpleWorker([queue], connection=queue.connection).handle_exception(job, *sys.exc_info())
"""


@pytest.mark.parametrize("retries_left", ["'3'", "object()", "2.5"])
def test_exception_handling_takes_a_job_whose_retries_left_is_not_an_int(retries_left: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _HANDLE, retries_left], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr


def test_a_worker_logs_its_settings_once_when_it_starts(queue: Queue, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="rq.worker"):
        SimpleWorker([queue], connection=queue.connection).work(burst=True)
    [line] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("byok-tasks:")]
    assert "headers signed (HMAC-SHA256)" in line and SECRET not in line
