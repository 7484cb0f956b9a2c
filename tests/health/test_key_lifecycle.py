"""A user's key through its life, on a real Celery prefork worker (4 processes) and the real Redis:
a new key works at once, a success clears the status, clear_key_status lifts the breaker,
platform failures never reach the hook, a missing or expired key is the user's failure."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery.result import AsyncResult

from byok_tasks import ByokKeyUnavailable, byok_context, clear_key_status, key_status
from byok_tasks import settings as byok_settings
from byok_tasks.testing.provider_server import json_reply
from byok_tasks.testing.sandbox import ProviderSandbox, sandbox_key
from byok_tasks.testing.sentry_collector import SentryCollector
from tests.support.celery_worker import Worker, start_worker
from tests.support.health import HealthSpace, wait_for
from tests.support.keys import SealedThen
from tests.support.redis_keys import delete_matching
from tests.support.rq_worker import ENCRYPTION_KEY
from tests.support.sentry import events_where, tags

THRESHOLD = 3
RESULT_TIMEOUT = 30


@pytest.fixture(scope="module")
def space(redis_url: str, provider_sandbox: ProviderSandbox) -> Iterator[HealthSpace]:
    # A generous bound: a store read that timed out would let a known-dead key through (fail
    # open, by design), and these tests would then see a working key where none is.
    space = HealthSpace(redis_url, provider_sandbox, {"threshold": THRESHOLD, "timeout": 5.0})
    yield space
    space.cleanup()


@pytest.fixture(scope="module")
def worker(
    space: HealthSpace, redis_url: str, worker_logs: Path, sentry_collector: SentryCollector
) -> Iterator[Worker]:
    env = space.env(SENTRY_DSN=sentry_collector.dsn)
    worker = start_worker(
        redis_url, redis_url, "prefork", worker_logs, app_module="tests.apps.health_worker", env=env, concurrency=4
    )
    yield worker
    worker.stop()


def run(worker: Worker, uid: str | None, *, keys: dict[str, str] | None = None) -> AsyncResult:
    if uid is None:
        return worker.app.send_task("health.summarize")
    with byok_context(uid, providers=["openai"], keys=keys):
        return worker.app.send_task("health.summarize")


def outcome(result: AsyncResult) -> str:
    try:
        return str(result.get(timeout=RESULT_TIMEOUT))
    except Exception as exc:
        return type(exc).__name__


def breaker(space: HealthSpace, uid: str) -> str | None:
    status = key_status(uid, health=space.health()).get("openai")
    return None if status is None else status.breaker


def revoked(worker: Worker, space: HealthSpace, uid: str) -> str:
    """``uid``'s key, failed ``THRESHOLD`` times one after the other: the breaker is open."""
    key = sandbox_key("openai", "invalid")
    space.set_key(uid, key)
    assert [outcome(run(worker, uid)) for _ in range(THRESHOLD)] == ["OpenAIError"] * THRESHOLD
    # A result is stored just before its failure is recorded: polled.
    wait_for(lambda: breaker(space, uid) == "open", "the breaker to open")
    assert outcome(run(worker, uid)) == "ByokKeyRejected"
    return key


def test_the_worker_says_at_start_where_key_health_is_kept(worker: Worker) -> None:
    [line] = [line for line in worker.log().splitlines() if "byok-tasks: headers" in line]
    assert "key health on: KeyHealth(" in line and "threshold=3 in 600 s" in line


def test_the_breaker_refuses_a_dead_key_without_calling_the_provider(worker: Worker, space: HealthSpace) -> None:
    uid = f"rita-{uuid.uuid4().hex[:6]}"
    key = revoked(worker, space, uid)
    before = space.provider_calls(key)
    assert [outcome(run(worker, uid)) for _ in range(5)] == ["ByokKeyRejected"] * 5
    assert space.provider_calls(key) == before == THRESHOLD


def test_a_new_key_for_the_same_user_works_at_once(worker: Worker, space: HealthSpace) -> None:
    uid = f"nina-{uuid.uuid4().hex[:6]}"
    revoked(worker, space, uid)
    new_key = sandbox_key("openai", "ok")
    space.set_key(uid, new_key)  # the user saved a new key; nobody cleared anything
    assert outcome(run(worker, uid)) == "ok"
    assert space.provider_calls(new_key) == 1
    # Let through because the breaker looked and saw another key, not because the store failed to answer.
    assert "key-health store" not in worker.log(), "the store failed to answer: the breaker may have failed open"


def test_a_success_after_a_failure_writes_ok(
    worker: Worker, space: HealthSpace, provider_sandbox: ProviderSandbox
) -> None:
    uid = f"omar-{uuid.uuid4().hex[:6]}"
    space.set_key(uid, sandbox_key("openai", "ok"))
    # One 401 from a provider's glitch, then the key answers again.
    provider_sandbox.reply(json_reply(401, {"error": {"message": "glitch", "code": "invalid_api_key"}}))
    assert outcome(run(worker, uid)) == "OpenAIError"
    # The result is stored just before the failure is recorded: polled.
    wait_for(lambda: "openai" in key_status(uid, health=space.health()), "the failure's record")
    assert key_status(uid, health=space.health())["openai"].status == "invalid_key"
    assert outcome(run(worker, uid)) == "ok"
    wait_for(lambda: key_status(uid, health=space.health())["openai"].status == "ok", "the status to be ok")
    status = key_status(uid, health=space.health())["openai"]
    assert (status.status, status.failures, status.breaker) == ("ok", 1, "closed")


def test_clear_key_status_lifts_the_breaker(worker: Worker, space: HealthSpace) -> None:
    uid = f"pia-{uuid.uuid4().hex[:6]}"
    key = revoked(worker, space, uid)
    clear_key_status(uid, "openai", health=space.health())  # the web side, when the user saves a key
    assert key_status(uid, health=space.health()) == {}
    assert outcome(run(worker, uid)) == "OpenAIError"  # called again: the provider answers
    assert space.provider_calls(key) == THRESHOLD + 1


def test_platform_failures_never_reach_the_hook_nor_the_record(worker: Worker, space: HealthSpace) -> None:
    uid = f"sam-{uuid.uuid4().hex[:6]}"
    with byok_context(uid, providers=["anthropic"]):  # OpenAI is not theirs: the platform's key, invalid
        results = [worker.app.send_task("health.summarize") for _ in range(THRESHOLD + 2)]
    assert [outcome(result) for result in results] == ["OpenAIError"] * (THRESHOLD + 2)
    # A user's failure after them, as a marker: once it has reached the hook, theirs would have too.
    marker = f"sam-marker-{uuid.uuid4().hex[:6]}"
    assert outcome(run(worker, marker)) == "ByokKeyUnavailable"
    wait_for(lambda: any(call["uid"] == marker for call in space.hook_calls()), "the marker's hook call")
    assert [call for call in space.hook_calls() if call["uid"] == uid] == []
    assert key_status(uid, health=space.health()) == {}


@pytest.mark.parametrize("how", ["missing", "expired"])
def test_a_missing_or_expired_key_is_the_users_failure_counted_and_told(
    worker: Worker, space: HealthSpace, sentry_collector: SentryCollector, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    uid = f"quinn-{how}-{uuid.uuid4().hex[:6]}"
    # The sealed keys are gone as after their TTL, deleted as soon as they are sealed.
    sealed = f"{space.ns}:sealed:"
    store = SealedThen(
        space.redis_url,
        encryption_key=ENCRYPTION_KEY,
        prefix=sealed,
        then=functools.partial(delete_matching, space.shared, sealed + "*"),
    )
    monkeypatch.setattr(byok_settings.current(), "key_store", store)  # this process seals, as the web side does
    if how == "missing":
        result = run(worker, uid)  # OpenAI is theirs, but no key is found for them
    else:
        with byok_context(uid, keys={"openai": sandbox_key("openai", "ok")}) as context:
            assert context.keyring is not None
            result = worker.app.send_task("health.summarize")
    with pytest.raises(ByokKeyUnavailable):
        result.get(timeout=RESULT_TIMEOUT)
    (event,) = events_where(sentry_collector, uid=uid, expect=1)
    assert {name: tags(event).get(name) for name in ("llm.source", "llm.reason", "llm.provider", "byok.uid")} == {
        "llm.source": "byok",
        "llm.reason": "key_unavailable",
        "llm.provider": "openai",
        "byok.uid": uid,
    }
    assert event["user"]["id"] == uid
    wait_for(lambda: "openai" in key_status(uid, health=space.health()), "the failure's record")
    assert key_status(uid, health=space.health())["openai"].status == "key_unavailable"
    wait_for(lambda: any(call["uid"] == uid for call in space.hook_calls()), "the hook's call")
    [call] = [call for call in space.hook_calls() if call["uid"] == uid]
    assert call["reason"] == "key_unavailable"
