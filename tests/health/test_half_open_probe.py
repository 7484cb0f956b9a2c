"""The breaker's half-open probe, on a real Celery prefork worker (4 processes) and the real Redis.

After the cool-off exactly one task, fleet-wide, calls the provider with the dead key (it
wins the probe claim) while the others are still refused; the probe's answer decides: a
success closes the breaker, a failure opens it again for another cool-off. The probe's
reply is held by the provider for a second, so that the other tasks run while it is out.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery.result import AsyncResult

from byok_tasks import KeyStatus, byok_context, key_status
from byok_tasks.testing.provider_server import json_reply
from byok_tasks.testing.sandbox import ProviderSandbox, sandbox_key
from tests.support.celery_worker import Worker, start_worker
from tests.support.health import HealthSpace, wait_for

THRESHOLD = 3
COOLOFF = 1.0
BATCH = 8  # tasks sent at once after the cool-off, over 4 processes
HELD = 1.0  # how long the provider holds the probe's reply
RESULT_TIMEOUT = 30
INVALID_KEY = {
    "error": {"message": "Incorrect API key provided.", "type": "invalid_request_error", "code": "invalid_api_key"}
}
COMPLETION = {
    "id": "chatcmpl-probe",
    "object": "chat.completion",
    "created": 0,
    "model": "gpt-4o-mini",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
}


@pytest.fixture(scope="module")
def space(redis_url: str, provider_sandbox: ProviderSandbox) -> Iterator[HealthSpace]:
    space = HealthSpace(redis_url, provider_sandbox, {"threshold": THRESHOLD, "cooloff": COOLOFF, "timeout": 1.0})
    yield space
    space.cleanup()


@pytest.fixture(scope="module")
def worker(space: HealthSpace, redis_url: str, worker_logs: Path) -> Iterator[Worker]:
    worker = start_worker(
        redis_url, redis_url, "prefork", worker_logs, app_module="tests.apps.health_worker", env=space.env(),
        concurrency=4,
    )  # fmt: skip
    yield worker
    worker.stop()


def run(worker: Worker, uid: str) -> AsyncResult:
    with byok_context(uid, providers=["openai"]):
        return worker.app.send_task("health.summarize")


def outcome(result: AsyncResult) -> str:
    try:
        return str(result.get(timeout=RESULT_TIMEOUT))
    except Exception as exc:
        return type(exc).__name__


def status(space: HealthSpace, uid: str) -> KeyStatus | None:
    return key_status(uid, health=space.health()).get("openai")


def half_open(worker: Worker, space: HealthSpace, uid: str) -> str:
    """``uid``'s key failed THRESHOLD times (the breaker opened), then the cool-off passed."""
    key = sandbox_key("openai", "invalid")
    space.set_key(uid, key)
    assert [outcome(run(worker, uid)) for _ in range(THRESHOLD)] == ["OpenAIError"] * THRESHOLD
    wait_for(lambda: (found := status(space, uid)) is not None and found.failures == THRESHOLD, "the failures")
    # Open for COOLOFF after the last failure, then half-open: polled, no fixed sleep.
    wait_for(lambda: (found := status(space, uid)) is not None and found.breaker == "half-open", "the cool-off")
    return key


def probe(worker: Worker, space: HealthSpace, uid: str, key: str) -> list[str]:
    """BATCH tasks at once: their outcomes; exactly one provider call among them."""
    before = space.provider_calls(key)
    outcomes = sorted(outcome(result) for result in [run(worker, uid) for _ in range(BATCH)])
    assert space.provider_calls(key) == before + 1, outcomes
    return outcomes


def test_a_failed_probe_opens_the_breaker_again(
    worker: Worker, space: HealthSpace, provider_sandbox: ProviderSandbox
) -> None:
    uid = f"pam-{uuid.uuid4().hex[:6]}"
    key = half_open(worker, space, uid)
    last = status(space, uid).last_failure  # type: ignore[union-attr]
    provider_sandbox.reply(json_reply(401, INVALID_KEY, delay=HELD))  # the key is still dead
    assert probe(worker, space, uid, key) == ["ByokKeyRejected"] * (BATCH - 1) + ["OpenAIError"]
    # The probe's failure is the record's last: open again, for another cool-off from it.
    reopened = wait_for(
        lambda: (found := status(space, uid)) is not None and (found.last_failure or 0) > (last or 0) and found,
        "the probe's failure recorded",
    )
    assert (reopened.status, reopened.refused) == ("invalid_key", BATCH - 1)
    assert reopened.breaker != "closed"  # a failed probe does not start the streak over
    again = status(space, uid)
    if time.time() < (reopened.last_failure or 0) + COOLOFF:  # read within the cool-off: open, not half-open
        assert again is not None and again.breaker == "open"
    # Its probe claim was given back with its answer: after the next cool-off, one task tries again.
    wait_for(lambda: (found := status(space, uid)) is not None and found.breaker == "half-open", "the next cool-off")
    before = space.provider_calls(key)
    assert outcome(run(worker, uid)) == "OpenAIError"
    assert space.provider_calls(key) == before + 1


def test_a_successful_probe_closes_the_breaker(
    worker: Worker, space: HealthSpace, provider_sandbox: ProviderSandbox
) -> None:
    uid = f"pat-{uuid.uuid4().hex[:6]}"
    key = half_open(worker, space, uid)
    provider_sandbox.reply(json_reply(200, COMPLETION, delay=HELD))  # the provider takes the key again
    assert probe(worker, space, uid, key) == ["ByokKeyRejected"] * (BATCH - 1) + ["ok"]
    closed = wait_for(
        lambda: (found := status(space, uid)) is not None and found.status == "ok" and found, "the status to be ok"
    )
    assert closed.breaker == "closed"
    # Closed: the next tasks call the provider, with no probe claim to win.
    before = space.provider_calls(key)
    assert [outcome(run(worker, uid)) for _ in range(2)] == ["OpenAIError"] * 2
    assert space.provider_calls(key) == before + 2
