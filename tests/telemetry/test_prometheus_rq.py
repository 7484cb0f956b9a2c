"""byok_tasks.prometheus under RQ's forking worker: each job's work horse counts into the multiprocess directory.

A real `rq worker` (RQ's default Worker, a horse forked per job) runs jobs that call the
real OpenAI SDK against the loopback sandbox with the platform's (invalid) key; the
directory is read back as byok_tasks.prometheus.start_http_server would serve it.
"""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector
from rq.job import JobStatus

from byok_tasks.testing.sandbox import ProviderSandbox
from tests.apps import rq_jobs
from tests.support.rq_worker import RqWorkerFactory, finished, rq_worker_factory_fixture  # noqa: F401

JOBS = 3


def counts(directory: Path) -> dict[tuple[tuple[str, str], ...], float]:
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(directory))  # type: ignore[no-untyped-call]
    return {
        tuple(sorted(sample.labels.items())): sample.value
        for metric in registry.collect()
        for sample in metric.samples
        if sample.name == "byok_llm_failures_total"
    }


def test_failures_in_rq_work_horses_are_all_counted(
    rq_worker_factory: RqWorkerFactory, provider_sandbox: ProviderSandbox, tmp_path: Path
) -> None:
    worker = rq_worker_factory("fork", env={"PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "BYOK_TEST_METRICS": "1"})
    jobs = [worker.queue.enqueue(rq_jobs.summarize, provider_sandbox.url + "/v1") for _ in range(JOBS)]
    assert [finished(job).get_status() for job in jobs] == [JobStatus.FAILED] * JOBS
    assert counts(tmp_path) == {
        (
            ("feature", "tests.apps.rq_jobs.summarize"),
            ("provider", "openai"),
            ("reason", "invalid_key"),
            ("source", "platform"),
        ): float(JOBS)
    }
