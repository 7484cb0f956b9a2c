"""The user's own key reaches the RQ job through ``current_key``, and never travels with the job."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from rq.job import Job

from byok_tasks import ByokKeyUnavailable, byok_context
from byok_tasks.keys import SealedKeyStore
from byok_tasks.testing.sandbox import sandbox_key
from tests.apps import rq_jobs
from tests.support.keys import digest
from tests.support.rq_worker import (  # noqa: F401
    KINDS,
    RqWorker,
    RqWorkerFactory,
    result_of,
    rq_worker_factory_fixture,
    sealed_key_store_fixture,
    sealed_keys_env,
)


@pytest.fixture(params=KINDS)
def worker(
    request: pytest.FixtureRequest, rq_worker_factory: RqWorkerFactory, sealed_key_store: SealedKeyStore
) -> RqWorker:
    return rq_worker_factory(request.param, env=sealed_keys_env())


@pytest.fixture(params=KINDS)
def resolving_worker(request: pytest.FixtureRequest, rq_worker_factory: RqWorkerFactory) -> RqWorker:
    return rq_worker_factory(request.param, env={"BYOK_TEST_RESOLVER": "1"})


def test_job_gets_the_users_sealed_key(worker: RqWorker) -> None:
    key = sandbox_key("openai", "ok")
    with byok_context(f"rq-keys-{uuid.uuid4().hex[:8]}", keys={"openai": key}):
        job = worker.queue.enqueue(rq_jobs.key_fingerprint, "openai")
    assert result_of(job) == digest(key)


def test_sealed_key_is_nowhere_in_redis_in_plain_text(worker: RqWorker, sealed_key_store: SealedKeyStore) -> None:
    key = sandbox_key("openai", "ok")
    with byok_context(f"rq-keys-{uuid.uuid4().hex[:8]}", keys={"openai": key}) as context:
        job = worker.queue.enqueue(rq_jobs.key_fingerprint, "openai")
    result_of(job)
    stored = worker.connection.hgetall(job.key)
    meta = Job.fetch(job.id, connection=worker.connection).meta
    assert context.keyring is not None and context.keyring.ref is not None
    sealed = worker.connection.get(sealed_key_store.prefix + context.keyring.ref)
    assert sealed is not None  # the keys are in Redis, encrypted
    texts = [*stored.values(), repr(meta).encode(), sealed]
    assert [text for text in texts if key.encode() in text] == []


def test_job_scheduled_beyond_the_sealed_keys_life_is_refused_at_enqueue(
    worker: RqWorker, sealed_key_store: SealedKeyStore
) -> None:
    queued_before = worker.queue.count + worker.queue.scheduled_job_registry.count
    with (
        byok_context("rq-keys-late", keys={"openai": sandbox_key("openai", "ok")}),
        pytest.raises(ByokKeyUnavailable, match="cannot take sealed keys, which live 600 s"),
    ):
        worker.queue.enqueue_in(timedelta(hours=1), rq_jobs.key_fingerprint, "openai")
    assert worker.queue.count + worker.queue.scheduled_job_registry.count == queued_before


def test_job_gets_the_key_from_the_workers_resolver(resolving_worker: RqWorker) -> None:
    uid = f"rq-keys-{uuid.uuid4().hex[:8]}"
    with byok_context(uid, ["openai"]):
        job = resolving_worker.queue.enqueue(rq_jobs.key_fingerprint, "openai")
    assert result_of(job) == digest(f"sk-proj-resolved-openai-{uid}")


def test_provider_that_is_not_byok_gets_no_user_key(resolving_worker: RqWorker) -> None:
    with byok_context(f"rq-keys-{uuid.uuid4().hex[:8]}", ["anthropic"]):
        job = resolving_worker.queue.enqueue(rq_jobs.key_fingerprint, "openai")
    assert result_of(job) is None
