"""A user's key, sent with a task, is found nowhere it could leak: Redis, the broker's message, the log, Sentry.

For each broker, a real prefork worker with a real sentry-sdk (sending to the loopback
collector) runs tasks that get the user's key: one whose provider call fails with it (an
LLM failure event), one that fails holding it in a local variable (an event with stack
frames), one that succeeds after a retry. Then every place is searched for pieces of the
key, decoding what the broker base64-encodes. A control puts a key in task arguments, the
easy and dangerous way, to show that the search finds a key where one is.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis
from celery import Celery
from kombu import Connection, Exchange, Queue

from byok_tasks import byok_context
from byok_tasks import keys as byok_keys
from byok_tasks import settings as byok_settings
from byok_tasks.keyring import is_reference
from byok_tasks.keys import SealedKeyStore, generate_encryption_key
from byok_tasks.testing.sandbox import ProviderSandbox, sandbox_key
from byok_tasks.testing.sentry_collector import SentryCollector
from tests.support.brokers import BROKERS, broker_for
from tests.support.redis_keys import delete_matching, new_namespace
from tests.support.timing import TIMEOUT

NAMESPACE = new_namespace("secrets")
ENCRYPTION_KEY = generate_encryption_key()
# "invalid": the provider refuses it, so the task's failure is an LLM failure Sentry hears of.
USER_KEYS = {"redis": sandbox_key("openai", "invalid"), "rabbitmq": sandbox_key("openai", "invalid")}


def pieces(secret: str) -> list[bytes]:
    """What would betray the key even cut or masked: 20 characters from each end of its random part."""
    random_part = secret.split("-", 3)[3]
    return [random_part[:20].encode(), random_part[-20:].encode()]


def found_in(data: bytes, secret: str) -> bool:
    """Whether ``data``, or anything base64-encoded inside it (kombu's message bodies), holds a piece of ``secret``."""
    return any(piece in form for form in readable_forms(data) for piece in pieces(secret))


def readable_forms(data: bytes, depth: int = 0) -> Iterator[bytes]:
    """``data``, and what decodes from every base64 run in it or in its JSON strings (a header's payload)."""
    yield data
    if depth > 3:
        return
    try:
        document = json.loads(data)
    except ValueError:  # UnicodeDecodeError too
        document = None
    for text in [*strings_in(document), data.decode("ascii", "ignore")]:
        for run in re.findall(r"[A-Za-z0-9+/_-]{16,}", text):
            decoded = from_base64(run)
            if decoded is not None:
                yield from readable_forms(decoded, depth + 1)


def strings_in(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from strings_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings_in(item)


def from_base64(text: str) -> bytes | None:
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        return None


def everything_in_redis(client: redis.Redis) -> Iterator[bytes]:
    """Every key name and every value in Redis, whatever the key's type."""
    for name in client.scan_iter(count=1000):
        yield name
        kind = client.type(name)
        values: list[bytes] = []
        if kind == b"string":
            values = [client.get(name) or b""]
        elif kind == b"hash":
            values = [part for pair in client.hgetall(name).items() for part in pair]
        elif kind == b"list":
            values = client.lrange(name, 0, -1)
        elif kind == b"set":
            values = list(client.smembers(name))
        elif kind == b"zset":
            values = client.zrange(name, 0, -1)
        elif kind == b"stream":
            values = [part for _, fields in client.xrange(name) for pair in fields.items() for part in pair]
        yield from values


@dataclass
class Message:
    headers: dict[str, Any]
    properties: dict[str, Any]
    body: bytes

    def parts(self) -> list[bytes]:
        return [
            json.dumps(self.headers, default=str).encode(),
            json.dumps(self.properties, default=str).encode(),
            self.body,
        ]


def take_message(broker_url: str, name: str) -> Message:
    """The one message waiting in queue ``name`` (declared as Celery declares it), taken off the broker."""
    with Connection(broker_url) as connection:
        queue = Queue(name, Exchange(name), routing_key=name)(connection.default_channel)
        queue.declare()  # kombu's Redis transport deletes only the bindings it has declared
        message = queue.get(no_ack=True)
        queue.delete()
    assert message is not None, f"no message waits in {name}"
    body = message.body  # bytes from Redis, str from py-amqp when the content encoding is utf-8
    return Message(dict(message.headers), dict(message.properties), body.encode() if isinstance(body, str) else body)


def drop_queue(broker_url: str, name: str) -> None:
    with Connection(broker_url) as connection:
        queue = Queue(name, Exchange(name), routing_key=name)(connection.default_channel)
        queue.declare()
        queue.delete()


@dataclass
class Published:
    broker_url: str
    worker: Any
    uid: str
    secret: str
    results: dict[str, Any]
    message: Message  # what the broker held for a task sent with the key
    waiting_queue: str  # a queue still holding such a message


@pytest.fixture(scope="module", params=BROKERS)
def published(
    request: pytest.FixtureRequest,
    worker_factory: Any,
    redis_url: str,
    provider_sandbox: ProviderSandbox,
    sentry_collector: SentryCollector,
) -> Iterator[Published]:
    broker_url = broker_for(request, request.param)
    env = {
        "BYOK_TEST_NAMESPACE": NAMESPACE,
        "BYOK_TASKS_ENCRYPTION_KEY": ENCRYPTION_KEY,
        "OPENAI_BASE_URL": provider_sandbox.url + "/v1",
        "SENTRY_DSN": sentry_collector.dsn,
    }
    worker = worker_factory(broker_url, "prefork", app_module="tests.apps.keys_app", env=env)
    uid, secret = f"leak-check-{uuid.uuid4().hex[:8]}", USER_KEYS[request.param]
    taken, waiting = f"{NAMESPACE}-taken-{request.param}", f"{NAMESPACE}-waiting-{request.param}"
    send = worker.app.send_task
    with pytest.MonkeyPatch.context() as patch, byok_context(uid, keys={"openai": secret}):
        # The web side's install(key_store=...), for this module only.
        patch.setattr(byok_settings.current(), "key_store", None)
        byok_keys.configure(
            store=SealedKeyStore(redis_url, encryption_key=ENCRYPTION_KEY, prefix=f"{NAMESPACE}:sealed:")
        )
        results = {
            "llm_failure": send("keys.summarize_or_fail", [uuid.uuid4().hex]),
            "key_in_a_local": send("keys.fail_holding_key"),
            "after_a_retry": send("keys.summarize", [uuid.uuid4().hex, 0]),
        }
        send("keys.summarize", [uuid.uuid4().hex], queue=taken)
        send("keys.summarize", [uuid.uuid4().hex], queue=waiting)
    for result in results.values():
        result.get(timeout=TIMEOUT, propagate=False)
    yield Published(broker_url, worker, uid, secret, results, take_message(broker_url, taken), waiting)
    drop_queue(broker_url, waiting)
    delete_matching(redis.Redis.from_url(redis_url), f"{NAMESPACE}:*")


def test_the_tasks_really_got_and_used_the_key(published: Published, provider_sandbox: ProviderSandbox) -> None:
    # Without this, a clean search could mean only that the key never travelled.
    outcome = published.results["after_a_retry"].get(timeout=TIMEOUT)
    assert (outcome["retries"], outcome["failure"]) == (1, ["byok", "invalid_key"])
    assert str(published.results["key_in_a_local"].result) == (
        f"the work failed after getting a key of {len(published.secret)} characters"
    )


def test_redis_holds_no_copy_of_the_key(published: Published, redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    if published.broker_url == redis_url:  # then the message sent with the key is among what is searched
        assert client.llen(published.waiting_queue) == 1
    assert [value[:200] for value in everything_in_redis(client) if found_in(value, published.secret)] == []


def test_the_message_on_the_broker_carries_a_sealed_reference_not_the_key(published: Published) -> None:
    message = published.message
    assert [part[:200] for part in message.parts() if found_in(part, published.secret)] == []
    payload = message.headers["byok"].split(".")[1]
    fields = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert fields["u"] == published.uid and is_reference(fields["k"])


def test_the_worker_log_never_shows_the_key(published: Published) -> None:
    log = published.worker.log()
    assert published.results["llm_failure"].id in log  # the failures were logged...
    assert not found_in(log.encode(), published.secret)  # ...without the key


def test_sentry_gets_both_failures_and_never_the_key(published: Published, sentry_collector: SentryCollector) -> None:
    ids = {name: result.id for name, result in published.results.items()}
    events = wait_for_events(sentry_collector, [ids["llm_failure"], ids["key_in_a_local"]])
    llm_event, local_event = events
    assert llm_event["tags"]["llm.source"] == "byok" and llm_event["tags"]["byok.uid"] == published.uid
    frame_vars = [frame.get("vars", {}) for frame in local_event["exception"]["values"][-1]["stacktrace"]["frames"]]
    assert any("key" in variables for variables in frame_vars)  # the key was in a local variable...
    assert [body[:200] for body in sentry_collector.raw if found_in(body, published.secret)] == []  # ...and not sent


def wait_for_events(collector: SentryCollector, task_ids: list[str]) -> list[dict[str, Any]]:
    """The first event mentioning each task id, in the order of ``task_ids``."""
    found: dict[str, dict[str, Any]] = {}
    seen = 0
    while len(found) < len(task_ids):
        events = collector.wait_for(seen + 1, timeout=TIMEOUT)
        assert len(events) > seen, f"Sentry never heard of tasks {set(task_ids) - set(found)}"
        for event in events[seen:]:
            text = json.dumps(event)
            for task_id in task_ids:
                if task_id in text:
                    found.setdefault(task_id, event)
        seen = len(events)
    return [found[task_id] for task_id in task_ids]


@pytest.mark.parametrize("broker", BROKERS)
def test_the_search_finds_a_key_put_in_task_arguments(
    broker: str, request: pytest.FixtureRequest, redis_url: str
) -> None:
    # The control: the way issue 8 warns against, so that a clean search above means something.
    broker_url = broker_for(request, broker)
    control_key, queue = sandbox_key("openai", "ok"), f"{NAMESPACE}-control-{uuid.uuid4().hex[:8]}"
    with Celery("control", broker=broker_url, set_as_current=False) as app:
        app.send_task("keys.summarize", [control_key], queue=queue)
    try:
        if broker == "redis":
            assert any(found_in(value, control_key) for value in everything_in_redis(redis.Redis.from_url(redis_url)))
        message = take_message(broker_url, queue)
    finally:
        drop_queue(broker_url, queue)
    assert any(found_in(part, control_key) for part in message.parts())
