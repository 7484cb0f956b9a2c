"""Real ``rq worker`` processes for the tests, each on a queue of its own.

Two kinds, as users start them: ``fork`` (RQ's default ``Worker``, one work horse forked
per job) and ``simple`` (``-w rq.worker.SimpleWorker``, every job in the worker's own
process). Import ``rq_worker_factory`` into a test module to use them.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
from rq import Queue
from rq.job import Job, JobStatus

import byok_tasks.rq
from byok_tasks import keys
from byok_tasks import settings as byok_settings
from byok_tasks.keys import ENCRYPTION_KEY_ENV, SealedKeyStore, generate_encryption_key
from tests.support.celery_worker import SECRET
from tests.support.processes import end_group, environment, spawn, wait_until_ready
from tests.support.timing import TIMEOUT

WORKER_CLASSES = {"fork": "rq.worker.Worker", "simple": "rq.worker.SimpleWorker", "spawn": "rq.worker.SpawnWorker"}
# The kinds byok-tasks supports; SpawnWorker is refused at start.
KINDS = ["fork", "simple"]
# Where the test workers keep sealed keys: a prefix of their own on the shared Redis.
KEY_PREFIX = "byok-test-rq:keys:"
# Shared by this test process and the workers started with ``sealed_keys_env()``.
ENCRYPTION_KEY = generate_encryption_key()


def install_publisher() -> None:
    """Configure this (the enqueuing) process like the workers; idempotent."""
    byok_tasks.rq.install(secret=SECRET)


@dataclass
class RqWorker:
    proc: subprocess.Popen[bytes]
    log_path: Path
    queue_name: str
    kind: str
    connection: redis.Redis

    @property
    def release(self) -> str:
        """The Sentry release of the worker's events (``SENTRY_RELEASE``): its own, to tell them apart."""
        return self.queue_name

    @property
    def queue(self) -> Queue:
        return Queue(self.queue_name, connection=self.connection)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        # SIGTERM is RQ's warm shutdown: the job in progress finishes first.
        end_group(self.proc, signal.SIGTERM, 15)
        self._delete_our_keys()

    def _delete_our_keys(self) -> None:
        # Failed jobs would stay on the shared Redis for a year: delete what this queue made.
        queue = self.queue
        registries = [queue.failed_job_registry, queue.finished_job_registry, queue.scheduled_job_registry]
        job_ids = {job_id for registry in registries for job_id in registry.get_job_ids()}
        for job_id in job_ids:
            self.connection.delete(Job.key_for(job_id), f"rq:results:{job_id}")
        for key in self.connection.scan_iter(match=f"*{self.queue_name}*", count=1000):
            self.connection.delete(key)


def start_rq_worker(
    redis_url: str,
    kind: str,
    log_dir: Path,
    *,
    secret: str | None = SECRET,
    require_signature: bool = False,
    with_scheduler: bool = False,
    env: dict[str, str] | None = None,
    settings: str = "tests.apps.rq_settings",
) -> RqWorker:
    """``rq worker -c tests.apps.rq_settings`` (or ``settings``) of ``kind`` on a fresh queue, ``env`` added."""
    queue = f"byok-test-rq-{kind}-{uuid.uuid4().hex[:8]}"
    log_path = log_dir / f"{queue}.log"
    full_env = environment(
        {
            "BYOK_TEST_RQ_REDIS_URL": redis_url,
            "BYOK_TEST_QUEUE": queue,
            "SENTRY_RELEASE": queue,
            "BYOK_TEST_KEY_PREFIX": KEY_PREFIX,
            **(env or {}),
        },
        secret=secret,
        require_signature=require_signature,
    )
    command = [
        sys.executable, "-m", "rq.cli", "worker", "-c", settings, "--url", redis_url,
        "-w", WORKER_CLASSES[kind], "--name", queue, *(["--with-scheduler"] if with_scheduler else []), queue,
    ]  # fmt: skip
    proc = spawn(command, full_env, log_path)
    worker = RqWorker(proc, log_path, queue, kind, redis.Redis.from_url(redis_url))
    try:
        wait_until_ready(proc, log_path, "*** Listening on", f"rq worker ({kind})")
    except RuntimeError:
        worker.stop()
        raise
    return worker


RqWorkerFactory = Callable[..., RqWorker]


def sealed_keys_env() -> dict[str, str]:
    """The environment of a worker that opens the keys this process seals (see ``sealed_key_store``)."""
    return {ENCRYPTION_KEY_ENV: ENCRYPTION_KEY}


@pytest.fixture(scope="module", name="sealed_key_store")
def sealed_key_store_fixture(redis_url: str) -> Iterator[SealedKeyStore]:
    """This process seals users' keys for the workers, as ``install(key_store=...)`` in a web process does.

    The store is process-wide (``byok_tasks.keys``): it is taken back after the module so
    that other modules still see a process without one.
    """
    store = SealedKeyStore(redis_url, encryption_key=ENCRYPTION_KEY, prefix=KEY_PREFIX, ttl=600)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(byok_settings.current(), "key_store", keys.key_store())
        patch.setattr(byok_settings.current(), "codec", byok_settings.current().codec)
        byok_tasks.rq.install(secret=SECRET, key_store=store)
        yield store


@pytest.fixture(scope="module", name="rq_worker_factory")
def rq_worker_factory_fixture(worker_logs: Path, redis_url: str) -> Iterator[RqWorkerFactory]:
    """Start workers that live until the end of the module; the same configuration is started once."""
    install_publisher()
    started: dict[str, RqWorker] = {}

    def get(kind: str, **options: Any) -> RqWorker:
        key = repr((kind, sorted(options.items())))
        worker = started.get(key)
        if worker is None or not worker.alive():
            worker = started[key] = start_rq_worker(redis_url, kind, worker_logs, **options)
        return worker

    yield get
    for worker in started.values():
        worker.stop()


def finished(job: Job, timeout: float = TIMEOUT) -> Job:
    """``job`` once it has finished or failed for good; fails the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while (status := job.get_status()) not in (JobStatus.FINISHED, JobStatus.FAILED):
        assert time.monotonic() < deadline, f"job {job.id} is still {status} after {timeout:g} s"
        time.sleep(0.05)
    return job


def result_of(job: Job, timeout: float = TIMEOUT) -> Any:
    """What ``job`` returned; fails the test if it failed instead."""
    finished(job, timeout)
    assert job.get_status() == JobStatus.FINISHED, f"job {job.id} failed:\n{job.latest_result()}"
    return job.return_value()


def recorded(connection: redis.Redis, job_id: str, what: str, timeout: float = TIMEOUT) -> Any:
    """What a callback of job ``job_id`` recorded (see tests/apps/rq_jobs.py)."""
    deadline = time.monotonic() + timeout
    while (value := connection.get(f"byok-test-rq:{job_id}:{what}")) is None:
        assert time.monotonic() < deadline, f"nothing recorded for {what} of job {job_id}"
        time.sleep(0.05)
    return json.loads(value)
