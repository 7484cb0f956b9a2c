"""One ``SimpleWorker`` process runs every job in turn: no job may see, or leave behind, another's context."""

from __future__ import annotations

from rq.job import Job

from byok_tasks import byok_context
from tests.apps import rq_jobs
from tests.support.contexts import interleaved_expectations
from tests.support.rq_worker import RqWorkerFactory, result_of, rq_worker_factory_fixture  # noqa: F401

JOBS = 1000


def test_no_context_leaks_between_a_thousand_interleaved_jobs(rq_worker_factory: RqWorkerFactory) -> None:
    worker = rq_worker_factory("simple")
    expected = interleaved_expectations(JOBS)
    jobs: list[Job] = []
    for context in expected:
        if context is None:
            jobs.append(worker.queue.enqueue(rq_jobs.whoami))
        else:
            with byok_context(context[0], context[1]):
                jobs.append(worker.queue.enqueue(rq_jobs.whoami))
    seen = [result_of(job, timeout=120) for job in jobs]
    mismatches = [(i, want, got) for i, (want, got) in enumerate(zip(expected, seen, strict=True)) if want != got]
    assert mismatches == []
    # The worker counts every job before or after which a context was in force (tests/apps/rq_settings.py).
    assert worker.connection.get(f"byok-test-rq:{worker.queue_name}:leaked") is None
