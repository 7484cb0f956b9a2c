"""The user's own key reaches the Dramatiq actor through ``current_key``, and never travels with the message."""

from __future__ import annotations

import hashlib
import uuid

import pytest

from byok_tasks import ByokKeyUnavailable, byok_context
from byok_tasks import settings as byok_settings
from byok_tasks.keys import SealedKeyStore
from byok_tasks.testing.sandbox import sandbox_key
from tests.support.dramatiq_worker import (  # noqa: F401
    BROKERS,
    DramatiqWorker,
    DramatiqWorkerFactory,
    IdleQueue,
    dramatiq_worker_factory_fixture,
    idle_queue_fixture,
    sealed_key_store_fixture,
    sealed_keys_env,
    seen,
)
from tests.support.ids import new_uid


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@pytest.fixture
def worker(dramatiq_worker_factory: DramatiqWorkerFactory, sealed_key_store: SealedKeyStore) -> DramatiqWorker:
    return dramatiq_worker_factory("redis", env=sealed_keys_env())


@pytest.fixture
def resolving_worker(dramatiq_worker_factory: DramatiqWorkerFactory) -> DramatiqWorker:
    return dramatiq_worker_factory("redis", env={"BYOK_TEST_RESOLVER": "1"})


def test_actor_gets_the_users_sealed_key(worker: DramatiqWorker) -> None:
    key = sandbox_key("openai", "ok")
    with byok_context(new_uid("dq-keys"), keys={"openai": key}):
        worker.actors["key_fingerprint"].send(mark := uuid.uuid4().hex, "openai")
    assert seen(worker, mark) == digest(key)


@pytest.mark.parametrize("idle_queue", BROKERS, indirect=True)
def test_sealed_key_is_nowhere_in_the_message_on_the_broker(
    idle_queue: IdleQueue, sealed_key_store: SealedKeyStore
) -> None:
    key = sandbox_key("openai", "ok")
    with byok_context(new_uid("dq-keys"), keys={"openai": key}) as context:
        idle_queue.actors["key_fingerprint"].send(uuid.uuid4().hex, "openai")
    [raw] = idle_queue.raw_messages()
    assert b'"byok":"' in raw  # the header went, with the sealed keys' reference
    assert context.keyring is not None and context.keyring.ref is not None
    sealed = idle_queue.store.get(sealed_key_store.prefix + context.keyring.ref)
    assert sealed is not None  # the keys are in Redis, encrypted
    assert [text for text in (raw, sealed) if key.encode() in text] == []


def test_sealing_without_a_key_store_refuses_the_send_and_enqueues_nothing(
    idle_queue: IdleQueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(byok_settings.current(), "key_store", None)
    with (
        byok_context(new_uid("dq-keys"), keys={"openai": sandbox_key("openai", "ok")}),
        pytest.raises(ByokKeyUnavailable),
    ):
        idle_queue.actors["key_fingerprint"].send(uuid.uuid4().hex, "openai")
    assert idle_queue.raw_messages() == []


def test_actor_gets_the_key_from_the_workers_resolver(resolving_worker: DramatiqWorker) -> None:
    with byok_context(uid := new_uid("dq-keys"), ["openai"]):
        resolving_worker.actors["key_fingerprint"].send(mark := uuid.uuid4().hex, "openai")
    assert seen(resolving_worker, mark) == digest(f"sk-proj-resolved-openai-{uid}")


def test_provider_that_is_not_byok_gets_no_user_key(resolving_worker: DramatiqWorker) -> None:
    with byok_context(new_uid("dq-keys"), ["anthropic"]):
        resolving_worker.actors["key_fingerprint"].send(mark := uuid.uuid4().hex, "openai")
    assert seen(resolving_worker, mark) is None
