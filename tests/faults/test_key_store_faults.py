"""The sealed-key store killed and frozen, at publish and in a running task, on real brokers and workers.

The store is a redis-server of this module's own; the brokers and the result backend are
the shared ones, which stay healthy. Each check is bounded: the default timeouts
(connect 1 s + read 2 s) plus a margin for a loaded machine.
"""

from __future__ import annotations

import functools
import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from rq import Queue

import byok_tasks.rq
from byok_tasks import ByokKeyUnavailable, byok_context
from byok_tasks import keys as byok_keys
from byok_tasks import settings as byok_settings
from byok_tasks.keys import ENCRYPTION_KEY_ENV, SealedKeyStore, generate_encryption_key
from byok_tasks.testing.sandbox import sandbox_key
from byok_tasks.testing.sentry_collector import SentryCollector
from tests.apps.celery_app import create_app
from tests.support.brokers import BROKERS, broker_for, waiting_then_delete
from tests.support.celery_worker import SECRET, Worker, start_worker
from tests.support.keys import SealedThen
from tests.support.redis_keys import new_namespace
from tests.support.redis_server import RedisServer
from tests.support.sentry import events_where, tags

BOUND = 3.0
MARGIN = 1.5
ENCRYPTION_KEY = generate_encryption_key()
NAMESPACE = new_namespace("faults")
USER_KEY = sandbox_key("openai", "ok")
RESULT_TIMEOUT = 30


@pytest.fixture(scope="module")
def key_store_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with RedisServer(tmp_path_factory.mktemp("key-store")) as server:
        yield server


@pytest.fixture
def key_store(key_store_server: RedisServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[RedisServer]:
    """The store, up and answering when the test starts, thawed and up again after it; this process seals there."""
    key_store_server.thaw()
    if key_store_server.proc is None or key_store_server.proc.poll() is not None:
        key_store_server.start()
    monkeypatch.setattr(byok_settings.current(), "key_store", None)
    byok_keys.configure(store=SealedKeyStore(key_store_server.url, encryption_key=ENCRYPTION_KEY))
    try:
        yield key_store_server
    finally:
        key_store_server.thaw()


BREAKS: dict[str, Callable[[RedisServer], None]] = {"killed": RedisServer.kill, "frozen": RedisServer.freeze}


def refused_in_time(send: Callable[[], object], what: str) -> ByokKeyUnavailable:
    started = time.monotonic()
    with byok_context("alice", keys={"openai": USER_KEY}), pytest.raises(ByokKeyUnavailable) as caught:
        send()
    elapsed = time.monotonic() - started
    print(f"\n{what}: ByokKeyUnavailable after {elapsed:.3f} s")
    assert elapsed < BOUND + MARGIN
    return caught.value


# At publish: refused with ByokKeyUnavailable before anything reaches the broker.


@pytest.mark.parametrize("broker", BROKERS)
@pytest.mark.parametrize("fault", BREAKS)
def test_celery_publish_with_the_store_broken_is_refused_in_time_and_sends_nothing(
    request: pytest.FixtureRequest, redis_url: str, key_store: RedisServer, broker: str, fault: str
) -> None:
    broker_url = broker_for(request, broker)
    queue = f"byok-test-faults-{uuid.uuid4().hex[:8]}"
    app = create_app(broker_url, redis_url, queue, secret=SECRET)
    try:
        BREAKS[fault](key_store)
        send = functools.partial(app.send_task, "faults.use_key", (NAMESPACE, "never-sent"))
        error = refused_in_time(send, f"Celery publish on {broker}, store {fault}")
        assert isinstance(error.__cause__, redis.RedisError)
        assert f"127.0.0.1:{key_store.port}/0" in str(error)
        assert waiting_then_delete(broker_url, queue) == 0
    finally:
        app.close()


def test_celery_publish_with_the_store_up_sends_the_task(
    request: pytest.FixtureRequest, redis_url: str, key_store: RedisServer
) -> None:
    # The control of the test above: the same send, the store up, one message waiting.
    queue = f"byok-test-faults-{uuid.uuid4().hex[:8]}"
    app = create_app(redis_url, redis_url, queue, secret=SECRET)
    try:
        with byok_context("alice", keys={"openai": USER_KEY}):
            app.send_task("faults.use_key", (NAMESPACE, "sent"))
        assert waiting_then_delete(redis_url, queue) == 1
    finally:
        app.close()


@pytest.fixture
def rq_queue(redis_url: str, key_store: RedisServer) -> Iterator[Queue]:
    byok_tasks.rq.install(secret=SECRET, key_store=byok_keys.key_store())
    connection = redis.Redis.from_url(redis_url)
    queue = Queue(f"byok-test-faults-rq-{uuid.uuid4().hex[:8]}", connection=connection)
    yield queue
    queue.delete(delete_jobs=True)


@pytest.mark.parametrize("fault", BREAKS)
def test_rq_enqueue_with_the_store_broken_is_refused_in_time_and_enqueues_nothing(
    rq_queue: Queue, key_store: RedisServer, fault: str
) -> None:
    BREAKS[fault](key_store)
    refused_in_time(lambda: rq_queue.enqueue("tests.apps.rq_jobs.whoami"), f"RQ enqueue, store {fault}")
    assert rq_queue.count == 0


# In a running task: current_key() raises ByokKeyUnavailable in time; no key, never the platform's.


@pytest.fixture(scope="module")
def store_worker(
    redis_url: str, worker_logs: Path, key_store_server: RedisServer, sentry_collector: SentryCollector
) -> Iterator[Worker]:
    env = {
        "BYOK_TEST_KEY_STORE_URL": key_store_server.url,
        ENCRYPTION_KEY_ENV: ENCRYPTION_KEY,
        "SENTRY_DSN": sentry_collector.dsn,
    }
    worker = start_worker(redis_url, redis_url, "prefork", worker_logs, app_module="tests.faults.app", env=env)
    yield worker
    worker.stop()


def recorded(shared: redis.Redis, marker: str) -> dict[str, Any]:
    deadline = time.monotonic() + RESULT_TIMEOUT
    while (value := shared.get(f"{NAMESPACE}:{marker}")) is None:
        assert time.monotonic() < deadline, f"task {marker} recorded nothing"
        time.sleep(0.05)
    return dict(json.loads(value))


@pytest.mark.parametrize("fault", BREAKS)
def test_task_with_the_store_broken_fails_in_time_as_the_users_key_unavailable(
    store_worker: Worker,
    key_store: RedisServer,
    redis_url: str,
    sentry_collector: SentryCollector,
    monkeypatch: pytest.MonkeyPatch,
    fault: str,
) -> None:
    uid, marker = f"alice-{uuid.uuid4().hex[:6]}", uuid.uuid4().hex
    # The store breaks once the keys are sealed: after them, before the task opens them.
    store = SealedThen(key_store.url, encryption_key=ENCRYPTION_KEY, then=functools.partial(BREAKS[fault], key_store))
    monkeypatch.setattr(byok_settings.current(), "key_store", store)
    with byok_context(uid, keys={"openai": USER_KEY}):
        result = store_worker.app.send_task("faults.use_key", (NAMESPACE, marker))
    with pytest.raises(ByokKeyUnavailable, match=f"the key store at 127.0.0.1:{key_store.port}/0 failed"):
        result.get(timeout=RESULT_TIMEOUT)
    outcome = recorded(redis.Redis.from_url(redis_url), marker)
    assert outcome["raised"] == "ByokKeyUnavailable"  # the task went on with no key at all
    print(f"\nprefork task, store {fault}: ByokKeyUnavailable after {outcome['elapsed']:.3f} s")
    assert outcome["elapsed"] < BOUND + MARGIN
    (event,) = events_where(sentry_collector, uid=uid, expect=1)
    assert {name: tags(event).get(name) for name in ("llm.source", "llm.reason", "llm.provider")} == {
        "llm.source": "byok",
        "llm.reason": "key_unavailable",
        "llm.provider": "openai",
    }


def test_task_with_the_store_up_gets_the_users_key(
    store_worker: Worker, key_store: RedisServer, redis_url: str
) -> None:
    # The control: the same task, the store up, the user's key.
    marker = uuid.uuid4().hex
    with byok_context("alice", keys={"openai": USER_KEY}):
        result = store_worker.app.send_task("faults.use_key", (NAMESPACE, marker))
    assert result.get(timeout=RESULT_TIMEOUT) == "done"
    assert recorded(redis.Redis.from_url(redis_url), marker) == {"key": "user"}
