"""Real ``dramatiq`` CLI workers for the tests, each on a queue of its own.

``python -m dramatiq tests.apps.dramatiq_app --processes 1 --threads N``, on Redis or
RabbitMQ. The test process sends through a broker of its own with ``ByokMiddleware``
(the secret the workers share), on which the app's actors are declared for each
worker's queue. Import ``dramatiq_worker_factory`` into a test module to use them.
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

import dramatiq
import pytest
import redis
from dramatiq.brokers.rabbitmq import RabbitmqBroker

from byok_tasks import keys
from byok_tasks import settings as byok_settings
from byok_tasks.keys import ENCRYPTION_KEY_ENV, SealedKeyStore, generate_encryption_key
from tests.apps import dramatiq_app
from tests.support.celery_worker import SECRET
from tests.support.processes import end_group, environment, spawn, wait_until_ready

BROKERS = ["redis", pytest.param("rabbitmq", marks=pytest.mark.rabbitmq)]
KEY_PREFIX = "byok-test-dq:keys:"
# Shared by this test process and the workers started with ``sealed_keys_env()``.
ENCRYPTION_KEY = generate_encryption_key()
TIMEOUT = 30.0
# How long nothing more must happen before a test concludes that nothing more will.
QUIET = 1.0


def sending_broker(url: str) -> dramatiq.Broker:
    """A broker of this process for ``url``, configured like the workers'; one per worker (actor names are unique)."""
    broker = dramatiq_app.make_broker(url)
    dramatiq_app.add_byok(broker, secret=SECRET)
    return broker


@dataclass
class DramatiqWorker:
    proc: subprocess.Popen[bytes]
    log_path: Path
    queue: str
    broker_url: str
    store: redis.Redis
    broker: dramatiq.Broker
    actors: dict[str, dramatiq.Actor[..., Any]]

    @property
    def release(self) -> str:
        """The Sentry release of the worker's events (``SENTRY_RELEASE``): its own, to tell them apart."""
        return self.queue

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def logged(self, text: str) -> str:
        """The log once it holds ``text``: a worker process's lines reach it through Dramatiq's main
        process, so they can land after the message's own records do."""
        deadline = time.monotonic() + TIMEOUT
        while text not in (log := self.log()):
            assert self.alive(), f"the worker died:\n{log}"
            assert time.monotonic() < deadline, f"not in the worker's log after {TIMEOUT:g} s: {text!r}\n{log}"
            time.sleep(0.05)
        return log

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        # SIGTERM is Dramatiq's graceful shutdown: the messages in progress finish first.
        end_group(self.proc, signal.SIGTERM, 15)
        delete_queue(self.broker, self.store, self.queue)
        self.broker.close()


def delete_queue(broker: dramatiq.Broker, store: redis.Redis, queue: str) -> None:
    """What a queue left on the shared brokers (dead letters stay a week): ours to delete."""
    for key in store.scan_iter(match=f"dramatiq:{queue}*", count=1000):
        store.delete(key)
    if isinstance(broker, RabbitmqBroker):
        for name in (queue, f"{queue}.DQ", f"{queue}.XQ"):
            broker.channel.queue_delete(name)


def start_dramatiq_worker(
    broker_url: str,
    redis_url: str,
    log_dir: Path,
    *,
    threads: int = 2,
    secret: str | None = SECRET,
    require_signature: bool = False,
    env: dict[str, str] | None = None,
) -> DramatiqWorker:
    """A ``dramatiq`` worker on a fresh queue of ``broker_url``, with ``env`` added to its environment."""
    queue = f"byok-test-dq-{uuid.uuid4().hex[:8]}"
    log_path = log_dir / f"{queue}.log"
    full_env = environment(
        {
            "BYOK_TEST_DQ_BROKER_URL": broker_url,
            "BYOK_TEST_DQ_REDIS_URL": redis_url,
            "BYOK_TEST_QUEUE": queue,
            "BYOK_TEST_KEY_PREFIX": KEY_PREFIX,
            "SENTRY_RELEASE": queue,
            # Dramatiq's idle poll (worker_timeout, 1 s by default) paces its delay queue: a
            # retry's delay is seen at the next poll of it, and its message is fetched at the next
            # poll of the queue, up to 2 s late with nothing else on the machine. At 100 ms, what
            # a test of retry delays measures is the delay asked for, not Dramatiq's polling.
            "dramatiq_worker_timeout": "100",
            **(env or {}),
        },
        secret=secret,
        require_signature=require_signature,
    )
    command = [
        sys.executable, "-m", "dramatiq", "tests.apps.dramatiq_app",
        "--processes", "1", "--threads", str(threads), "--queues", queue,
    ]  # fmt: skip
    proc = spawn(command, full_env, log_path)
    store = redis.Redis.from_url(redis_url)
    broker = sending_broker(broker_url)
    actors = dramatiq_app.declare(broker, queue, store)
    worker = DramatiqWorker(proc, log_path, queue, broker_url, store, broker, actors)
    try:
        wait_until_ready(proc, log_path, "Worker process is ready for action.", "dramatiq worker")
    except RuntimeError:
        worker.stop()
        raise
    return worker


DramatiqWorkerFactory = Callable[..., DramatiqWorker]


@pytest.fixture(scope="module", name="dramatiq_worker_factory")
def dramatiq_worker_factory_fixture(
    worker_logs: Path, redis_url: str, request: pytest.FixtureRequest
) -> Iterator[DramatiqWorkerFactory]:
    """Start workers that live until the end of the module; the same configuration is started once.

    ``factory("redis" | "rabbitmq", **options)``.
    """
    started: dict[str, DramatiqWorker] = {}

    def get(broker: str, **options: Any) -> DramatiqWorker:
        url = redis_url if broker == "redis" else str(request.getfixturevalue("rabbitmq_url"))
        key = repr((url, sorted(options.items())))
        worker = started.get(key)
        if worker is None or not worker.alive():
            worker = started[key] = start_dramatiq_worker(url, redis_url, worker_logs, **options)
        return worker

    yield get
    for worker in started.values():
        worker.stop()


def sealed_keys_env() -> dict[str, str]:
    """The environment of a worker that opens the keys this process seals (see ``sealed_key_store``)."""
    return {ENCRYPTION_KEY_ENV: ENCRYPTION_KEY}


@pytest.fixture(scope="module", name="sealed_key_store")
def sealed_key_store_fixture(redis_url: str) -> Iterator[SealedKeyStore]:
    """This process seals users' keys for the workers, as a web process configured with ``key_store=`` does.

    The store is process-wide: it is taken back after the module, so that other modules
    still see a process without one.
    """
    store = SealedKeyStore(redis_url, encryption_key=ENCRYPTION_KEY, prefix=KEY_PREFIX, ttl=600)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(byok_settings.current(), "key_store", keys.key_store())
        patch.setattr(byok_settings.current(), "codec", byok_settings.current().codec)
        byok_settings.configure("dramatiq", secret=SECRET, key_store=store)
        yield store


def recorded(worker: DramatiqWorker, marker: str, what: str = "seen", count: int = 1) -> list[Any]:
    """The first ``count`` values an actor recorded under ``marker`` (see tests/apps/dramatiq_app.py)."""
    key = dramatiq_app.record_key(marker, what)
    deadline = time.monotonic() + TIMEOUT
    while (length := worker.store.llen(key)) < count:
        assert worker.alive(), f"the worker died:\n{worker.log()}"
        assert time.monotonic() < deadline, f"{length} of {count} records of {what} for {marker}"
        time.sleep(0.05)
    return [json.loads(value) for value in worker.store.lrange(key, 0, -1)]


def seen(worker: DramatiqWorker, marker: str) -> Any:
    """What the one run of the actor sent with ``marker`` recorded."""
    [value] = recorded(worker, marker)
    return value


def runs(worker: DramatiqWorker, message: dramatiq.Message[Any], *, failed: bool = True) -> list[dict[str, Any]]:
    """Every run of ``message``, once one has ``failed`` (or succeeded) for good and nothing followed for a while."""
    key = dramatiq_app.runs_key(message.message_id)
    deadline = time.monotonic() + TIMEOUT

    def done() -> list[dict[str, Any]]:
        found = [json.loads(value) for value in worker.store.lrange(key, 0, -1)]
        finished = bool(found) and (found[-1]["failed"] or found[-1]["exception"] is None)
        return found if finished else []

    while not (found := done()):
        assert worker.alive(), f"the worker died:\n{worker.log()}"
        assert time.monotonic() < deadline, f"message {message.message_id} has not finished"
        time.sleep(0.05)
    time.sleep(QUIET)
    after = done()
    assert after == found, f"message {message.message_id} ran again after it had finished: {after}"
    assert found[-1]["failed"] is failed, f"message {message.message_id}: {found}"
    return found


@dataclass
class IdleQueue:
    """A queue no worker consumes, and the app's actors on it: what is sent stays on the broker, to be read raw."""

    queue: str
    broker: dramatiq.Broker
    store: redis.Redis
    actors: dict[str, dramatiq.Actor[..., Any]]

    def raw_messages(self) -> list[bytes]:
        """The messages waiting on the queue, as the broker holds them (taken off it, on RabbitMQ)."""
        if isinstance(self.broker, RabbitmqBroker):
            bodies = []
            while (got := self.broker.channel.basic_get(self.queue, auto_ack=True))[0] is not None:
                bodies.append(got[2])
            return bodies
        return list(self.store.hvals(f"dramatiq:{self.queue}.msgs"))


@pytest.fixture(name="idle_queue")
def idle_queue_fixture(request: pytest.FixtureRequest, redis_url: str) -> Iterator[IdleQueue]:
    """An idle queue on the broker the test is parametrized with (``broker``), or on Redis."""
    name = getattr(request, "param", "redis")
    url = redis_url if name == "redis" else str(request.getfixturevalue("rabbitmq_url"))
    queue, broker = f"byok-test-dq-idle-{uuid.uuid4().hex[:8]}", sending_broker(url)
    store = redis.Redis.from_url(redis_url)
    idle = IdleQueue(queue, broker, store, dramatiq_app.declare(broker, queue, store))
    yield idle
    delete_queue(broker, store, queue)
    broker.close()
