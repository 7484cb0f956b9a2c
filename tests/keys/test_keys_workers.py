"""The user's key reaches real prefork workers on real brokers, sealed in Redis or from the app's resolver.

Every task calls the real OpenAI SDK against the provider sandbox, which records the key
each request carried: "the right key arrived" is read from what the provider received,
and "no fallback to the platform's key" from the provider receiving nothing at all.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import redis
from celery import chain
from kombu import Connection, Exchange, Queue

from byok_tasks import ByokContext, ByokKeyExpired, ByokKeyUnavailable, byok_context
from byok_tasks import keys as byok_keys
from byok_tasks import settings as byok_settings
from byok_tasks.header import HeaderCodec
from byok_tasks.keys import Keyring, SealedKeyStore, generate_encryption_key
from byok_tasks.testing.sandbox import ProviderSandbox, sandbox_key
from tests.support.brokers import BROKERS, broker_for
from tests.support.celery_worker import SECRET
from tests.support.redis_keys import new_namespace, removed_after
from tests.support.timing import TIMEOUT

NAMESPACE = new_namespace("keys")
ENCRYPTION_KEY = generate_encryption_key()
PLATFORM_KEY = sandbox_key("openai", "invalid")
ANSWER = "A short summary from the sandbox."


def worker_env(sandbox: ProviderSandbox, **extra: str) -> dict[str, str]:
    return {
        "BYOK_TEST_NAMESPACE": NAMESPACE,
        "OPENAI_BASE_URL": sandbox.url + "/v1",
        "BYOK_TEST_PLATFORM_KEY": PLATFORM_KEY,
        **extra,
    }


@pytest.fixture(params=BROKERS)
def sealed_worker(request: pytest.FixtureRequest, worker_factory: Any, provider_sandbox: ProviderSandbox) -> Any:
    env = worker_env(provider_sandbox, BYOK_TASKS_ENCRYPTION_KEY=ENCRYPTION_KEY)
    return worker_factory(broker_for(request, request.param), "prefork", app_module="tests.apps.keys_app", env=env)


@pytest.fixture(params=BROKERS)
def resolver_worker(request: pytest.FixtureRequest, worker_factory: Any, provider_sandbox: ProviderSandbox) -> Any:
    env = worker_env(provider_sandbox, BYOK_TEST_RESOLVER="1")
    return worker_factory(broker_for(request, request.param), "prefork", app_module="tests.apps.keys_app", env=env)


@pytest.fixture
def sealing(redis_url: str, monkeypatch: pytest.MonkeyPatch, shared_redis: redis.Redis) -> Iterator[SealedKeyStore]:
    """The web side's SealedKeyStore (what install(key_store=...) sets), for this test only."""
    monkeypatch.setattr(byok_settings.current(), "key_store", None)
    store = SealedKeyStore(redis_url, encryption_key=ENCRYPTION_KEY, prefix=f"{NAMESPACE}:sealed:")
    byok_keys.configure(store=store)
    yield store


@pytest.fixture(scope="module")
def shared_redis(redis_url: str) -> Iterator[redis.Redis]:
    with removed_after(redis_url, f"{NAMESPACE}:*") as client:
        yield client


def send(worker: Any, name: str, *args: Any, **options: Any) -> Any:
    return worker.app.send_task(name, args, **options)


def keys_received(sandbox: ProviderSandbox, marker: str) -> list[str]:
    """The API keys of the requests the sandbox received for ``marker``, in order."""
    sent = []
    for request in list(sandbox.requests):
        # Other tests share the sandbox, and not every request they send has a JSON body.
        if request.body.startswith(b"{") and request.json().get("user") == marker:
            headers = {name.lower(): value for name, value in request.headers.items()}
            sent.append(headers.get("authorization", "").removeprefix("Bearer "))
    return sent


def new_marker() -> str:
    return uuid.uuid4().hex


def failure_of(result: Any) -> BaseException:
    with pytest.raises(Exception) as caught:
        result.get(timeout=TIMEOUT)
    return caught.value


# The sealed handoff: keys that arrive with the request, sealed in Redis, opened by the worker.


def test_task_calls_the_provider_with_the_users_sealed_key(
    sealed_worker: Any, sealing: SealedKeyStore, provider_sandbox: ProviderSandbox
) -> None:
    alice_key, marker = sandbox_key("openai", "ok"), new_marker()
    with byok_context("alice", keys={"openai": alice_key}):
        result = send(sealed_worker, "keys.summarize", marker)
    outcome = result.get(timeout=TIMEOUT)
    assert (outcome["own_key"], outcome["answer"]) == (True, ANSWER)
    assert keys_received(provider_sandbox, marker) == [alice_key]


def test_a_failure_with_the_users_sealed_key_counts_as_byok(
    sealed_worker: Any, sealing: SealedKeyStore, provider_sandbox: ProviderSandbox
) -> None:
    alice_key, marker = sandbox_key("openai", "invalid"), new_marker()
    with byok_context("alice", keys={"openai": alice_key}):
        result = send(sealed_worker, "keys.summarize", marker)
    assert result.get(timeout=TIMEOUT)["failure"] == ["byok", "invalid_key"]
    assert keys_received(provider_sandbox, marker) == [alice_key]


def test_retry_still_gets_the_users_sealed_key(
    sealed_worker: Any, sealing: SealedKeyStore, provider_sandbox: ProviderSandbox
) -> None:
    alice_key, marker = sandbox_key("openai", "ok"), new_marker()
    with byok_context("alice", keys={"openai": alice_key}):
        result = send(sealed_worker, "keys.summarize", marker, 0)
    outcome = result.get(timeout=TIMEOUT)
    assert (outcome["retries"], outcome["answer"]) == (1, ANSWER)
    assert keys_received(provider_sandbox, marker) == [alice_key]


def test_both_steps_of_a_chain_get_the_users_sealed_key(
    sealed_worker: Any, sealing: SealedKeyStore, provider_sandbox: ProviderSandbox
) -> None:
    alice_key, first, second = sandbox_key("openai", "ok"), new_marker(), new_marker()
    app = sealed_worker.app
    with byok_context("alice", keys={"openai": alice_key}):
        result = chain(app.signature("keys.summarize", (first,)), app.signature("keys.then_summarize", (second,)))()
    steps = result.get(timeout=TIMEOUT)
    assert [step["answer"] for step in steps] == [ANSWER, ANSWER]
    assert keys_received(provider_sandbox, first) + keys_received(provider_sandbox, second) == [alice_key, alice_key]


def test_provider_outside_the_context_gets_the_platform_key_and_fails_as_platform(
    sealed_worker: Any, sealing: SealedKeyStore, provider_sandbox: ProviderSandbox
) -> None:
    marker = new_marker()
    with byok_context("alice", keys={"anthropic": sandbox_key("anthropic", "ok")}):
        result = send(sealed_worker, "keys.summarize", marker)
    outcome = result.get(timeout=TIMEOUT)
    assert (outcome["own_key"], outcome["failure"]) == (False, ["platform", "invalid_key"])
    assert keys_received(provider_sandbox, marker) == [PLATFORM_KEY]


def test_retry_that_runs_after_the_sealed_keys_expired_fails_with_byok_key_expired(
    sealed_worker: Any, sealing: SealedKeyStore, provider_sandbox: ProviderSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Sealed for 2 s; the first attempt opens them, its retry runs 4 s later.
    monkeypatch.setattr(sealing, "ttl", 2.0)
    marker = new_marker()
    with byok_context("alice", keys={"openai": sandbox_key("openai", "ok")}):
        result = send(sealed_worker, "keys.summarize", marker, 4)
    error = failure_of(result)
    assert isinstance(error, ByokKeyExpired)
    assert "the keys sealed for user 'alice'" in str(error) and "are gone" in str(error)
    assert keys_received(provider_sandbox, marker) == []  # no call at all, so none with the platform's key


@pytest.fixture
def idle_queue(sealed_worker: Any) -> Iterator[str]:
    """A queue no worker consumes, emptied and removed after the test."""
    name = f"{NAMESPACE}-idle-{uuid.uuid4().hex[:8]}"
    yield name
    messages_waiting(sealed_worker.app.conf.broker_url, name)


@pytest.mark.parametrize("schedule", ["countdown", "eta"])
def test_task_scheduled_beyond_the_sealed_keys_ttl_is_refused_when_sent(
    sealed_worker: Any, sealing: SealedKeyStore, idle_queue: str, schedule: str
) -> None:
    options: dict[str, Any] = {"countdown": 7200}
    if schedule == "eta":
        options = {"eta": datetime.now(timezone.utc) + timedelta(hours=2)}
    with byok_context("alice", keys={"openai": sandbox_key("openai", "ok")}):
        with pytest.raises(ByokKeyUnavailable, match="s ahead cannot take sealed keys, which live 3600 s"):
            send(sealed_worker, "keys.summarize", new_marker(), queue=idle_queue, **options)
        assert messages_waiting(sealed_worker.app.conf.broker_url, idle_queue) == 0
        send(sealed_worker, "keys.summarize", new_marker(), queue=idle_queue, countdown=60)  # the control
        assert messages_waiting(sealed_worker.app.conf.broker_url, idle_queue) == 1


def messages_waiting(broker_url: str, name: str) -> int:
    """How many messages wait in queue ``name`` (declared as Celery declares it); removes the queue."""
    with Connection(broker_url) as connection:
        queue = Queue(name, Exchange(name), routing_key=name)(connection.default_channel)
        queue.declare()
        count = 0
        while queue.get(no_ack=True) is not None:
            count += 1
        queue.delete()
        return count


def test_worker_with_another_encryption_key_cannot_open_the_keys(
    worker_factory: Any, provider_sandbox: ProviderSandbox, sealing: SealedKeyStore, redis_url: str
) -> None:
    other_key = generate_encryption_key()
    env = worker_env(provider_sandbox, BYOK_TASKS_ENCRYPTION_KEY=other_key)
    worker = worker_factory(redis_url, "prefork", app_module="tests.apps.keys_app", env=env)
    alice_key, marker = sandbox_key("openai", "ok"), new_marker()
    with byok_context("alice", keys={"openai": alice_key}):
        result = send(worker, "keys.summarize", marker)
    error = failure_of(result)
    assert type(error) is ByokKeyUnavailable
    assert "do not open for user 'alice': a different encryption key" in str(error)
    assert not any(secret in str(error) for secret in (alice_key, ENCRYPTION_KEY, other_key))
    assert keys_received(provider_sandbox, marker) == []


def test_reference_copied_into_another_users_header_does_not_open(
    sealed_worker: Any, sealing: SealedKeyStore, provider_sandbox: ProviderSandbox
) -> None:
    alice_key, marker = sandbox_key("openai", "ok"), new_marker()
    alice_ref = sealing.seal({"openai": alice_key}, "alice")
    # Mallory can sign headers (or the deployment does not), and copies Alice's reference.
    mallory = ByokContext("mallory", frozenset({"openai"}), Keyring(ref=alice_ref))
    header = HeaderCodec.configure(SECRET).encode(mallory)
    error = failure_of(send(sealed_worker, "keys.summarize", marker, headers={"byok": header}))
    assert type(error) is ByokKeyUnavailable
    assert "do not open for user 'mallory'" in str(error) and alice_key not in str(error)
    assert keys_received(provider_sandbox, marker) == []


# The resolver: the application's own store of users' keys, asked lazily and cached per process.


def test_resolver_gives_the_task_the_users_stored_key(
    resolver_worker: Any, shared_redis: redis.Redis, provider_sandbox: ProviderSandbox
) -> None:
    uid, bob_key, marker = f"bob-{uuid.uuid4().hex[:6]}", sandbox_key("openai", "ok"), new_marker()
    shared_redis.hset(f"{NAMESPACE}:vault", f"{uid}:openai", bob_key)
    with byok_context(uid, ["openai"]):
        result = send(resolver_worker, "keys.summarize", marker)
    assert result.get(timeout=TIMEOUT)["answer"] == ANSWER
    assert keys_received(provider_sandbox, marker) == [bob_key]


def test_retry_and_chain_still_get_the_resolved_key(
    resolver_worker: Any, shared_redis: redis.Redis, provider_sandbox: ProviderSandbox
) -> None:
    uid, bob_key = f"bob-{uuid.uuid4().hex[:6]}", sandbox_key("openai", "ok")
    first, second = new_marker(), new_marker()
    shared_redis.hset(f"{NAMESPACE}:vault", f"{uid}:openai", bob_key)
    app = resolver_worker.app
    with byok_context(uid, ["openai"]):
        result = chain(app.signature("keys.summarize", (first, 0)), app.signature("keys.then_summarize", (second,)))()
    steps = result.get(timeout=TIMEOUT)
    assert [(step["answer"], step["retries"]) for step in steps] == [(ANSWER, 1), (ANSWER, 0)]
    assert keys_received(provider_sandbox, first) + keys_received(provider_sandbox, second) == [bob_key, bob_key]


def test_resolver_is_not_called_for_tasks_that_never_ask_for_a_key(
    resolver_worker: Any, shared_redis: redis.Redis
) -> None:
    uid = f"carol-{uuid.uuid4().hex[:6]}"
    shared_redis.hset(f"{NAMESPACE}:vault", f"{uid}:openai", sandbox_key("openai", "ok"))
    with byok_context(uid, ["openai"]):
        results = [send(resolver_worker, "keys.no_key_needed") for _ in range(4)]
    assert [result.get(timeout=TIMEOUT) for result in results] == [uid] * 4
    assert list(shared_redis.scan_iter(match=f"{NAMESPACE}:resolved:{uid}:*")) == []


def test_each_worker_process_resolves_a_users_key_once(resolver_worker: Any, shared_redis: redis.Redis) -> None:
    uid = f"dave-{uuid.uuid4().hex[:6]}"
    shared_redis.hset(f"{NAMESPACE}:vault", f"{uid}:openai", sandbox_key("openai", "ok"))
    with byok_context(uid, ["openai"]):
        results = [send(resolver_worker, "keys.summarize", new_marker()) for _ in range(8)]
    outcomes = [result.get(timeout=TIMEOUT) for result in results]
    assert {outcome["answer"] for outcome in outcomes} == {ANSWER}
    calls = {int(name.rsplit(b":", 1)[1]): int(shared_redis.get(name) or 0) for name in counters(shared_redis, uid)}
    assert calls == {pid: 1 for pid in {outcome["pid"] for outcome in outcomes}}


def counters(client: redis.Redis, uid: str) -> list[bytes]:
    return list(client.scan_iter(match=f"{NAMESPACE}:resolved:{uid}:*"))


def test_resolver_without_the_users_key_fails_instead_of_using_the_platform_key(
    resolver_worker: Any, provider_sandbox: ProviderSandbox
) -> None:
    marker = new_marker()
    with byok_context(f"erin-{uuid.uuid4().hex[:6]}", ["openai"]):
        error = failure_of(send(resolver_worker, "keys.summarize", marker))
    assert type(error) is ByokKeyUnavailable
    assert "uses their own openai key, but it cannot be found" in str(error)
    assert "the resolver returned none" in str(error)
    assert keys_received(provider_sandbox, marker) == []


def test_worker_without_a_key_store_says_so_for_sealed_keys(
    resolver_worker: Any, sealing: SealedKeyStore, provider_sandbox: ProviderSandbox
) -> None:
    marker = new_marker()
    with byok_context("alice", keys={"openai": sandbox_key("openai", "ok")}):
        error = failure_of(send(resolver_worker, "keys.summarize", marker))
    assert type(error) is ByokKeyUnavailable
    assert "no SealedKeyStore is configured in this process" in str(error)
    assert keys_received(provider_sandbox, marker) == []
