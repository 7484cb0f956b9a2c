"""A header that cannot be trusted never crashes an RQ worker and never runs a job as someone else.

The cases are those of tests/celery/test_celery_bad_headers.py (from tests/support/headers.py),
plus headers signed with the right secret that expired or were issued in the future; each is
put in the job's meta as a forger with access to Redis would.
"""

from __future__ import annotations

import time

import pytest
from rq import Retry
from rq.job import Job, JobStatus

from byok_tasks import ByokContext
from byok_tasks.header import HeaderCodec
from tests.apps import rq_jobs
from tests.support.celery_worker import SECRET
from tests.support.headers import ALICE, raw_header_in
from tests.support.headers import BAD_HEADERS as CELERY_BAD_HEADERS
from tests.support.rq_worker import KINDS, RqWorker, RqWorkerFactory, finished, result_of, rq_worker_factory_fixture  # noqa: F401


def _signed_at(issued: float) -> str:
    codec = HeaderCodec((SECRET.encode(),), clock=lambda: issued)
    return codec.encode(ByokContext("mallory", frozenset({"openai"})))


BAD_HEADERS: dict[str, object] = {
    **CELERY_BAD_HEADERS,
    "expired (issued 8 days ago, signed)": _signed_at(time.time() - 8 * 24 * 3600),
    "issued in the future (signed)": _signed_at(time.time() + 3600),
}


@pytest.fixture(params=KINDS)
def worker(request: pytest.FixtureRequest, rq_worker_factory: RqWorkerFactory) -> RqWorker:
    return rq_worker_factory(request.param)


@pytest.fixture(scope="module")
def strict_worker(rq_worker_factory: RqWorkerFactory) -> RqWorker:
    return rq_worker_factory("simple", require_signature=True)


def _exc_string(job: Job) -> str:
    result = job.latest_result()
    assert result is not None and result.exc_string is not None, f"job {job.id} left no failure"
    return result.exc_string


@pytest.mark.parametrize("header", BAD_HEADERS.values(), ids=BAD_HEADERS.keys())
def test_bad_header_runs_the_job_without_context(worker: RqWorker, header: object) -> None:
    job = worker.queue.enqueue(rq_jobs.whoami, meta={"byok": header})
    assert result_of(job) is None
    assert f"job {job.id}: BYOK header refused" in worker.log()


@pytest.mark.parametrize("header", BAD_HEADERS.values(), ids=BAD_HEADERS.keys())
def test_bad_header_refuses_a_required_job_without_retrying_it(worker: RqWorker, header: object) -> None:
    job = finished(worker.queue.enqueue(rq_jobs.whoami_required, meta={"byok": header}, retry=Retry(max=3)))
    assert job.get_status() == JobStatus.FAILED
    assert "ByokContextRequired: job tests.apps.rq_jobs.whoami_required" in _exc_string(job)
    assert "requires a BYOK context: header" in _exc_string(job)
    assert worker.log().count(f"job {job.id}: BYOK header refused") == 1  # one run: no retry


@pytest.mark.parametrize("header", BAD_HEADERS.values(), ids=BAD_HEADERS.keys())
def test_warning_names_the_job_but_never_echoes_the_header(worker: RqWorker, header: object) -> None:
    job = finished(worker.queue.enqueue(rq_jobs.whoami_required, meta={"byok": header}))
    log = worker.log()
    assert job.id in log
    assert not raw_header_in(log, header)
    assert not raw_header_in(_exc_string(job), header)


def test_worker_keeps_serving_after_bad_headers(worker: RqWorker) -> None:
    jobs = [worker.queue.enqueue(rq_jobs.whoami_required, meta={"byok": header}) for header in BAD_HEADERS.values()]
    assert all(finished(job).get_status() == JobStatus.FAILED for job in jobs)
    assert worker.alive()
    assert result_of(worker.queue.enqueue(rq_jobs.whoami, meta={"byok": ALICE})) == ["alice", ["openai"]]


def test_strict_worker_refuses_an_unsigned_header(strict_worker: RqWorker) -> None:
    unsigned = HeaderCodec().encode(ByokContext("alice", frozenset({"openai"})))
    job = strict_worker.queue.enqueue(rq_jobs.whoami, meta={"byok": unsigned})
    assert result_of(job) is None
    assert f"job {job.id}: BYOK header refused, running without a BYOK context: header is unsigned" in (
        strict_worker.log()
    )


def test_strict_worker_accepts_a_signed_header(strict_worker: RqWorker) -> None:
    assert result_of(strict_worker.queue.enqueue(rq_jobs.whoami, meta={"byok": ALICE})) == ["alice", ["openai"]]
