"""Real prefork workers refuse a replayed old header and honour the delay a task was published with.

Old and future headers are signed with the workers' secret by a codec whose clock reads
another time: exactly what a publisher in the past, or with a fast clock, would have sent.
"""

from __future__ import annotations

import re
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from byok_tasks import ByokContext, ByokContextRequired, byok_context
from byok_tasks.header import HeaderCodec
from byok_tasks.testing.sandbox import ProviderSandbox
from tests.support.brokers import BROKERS, broker_for
from tests.support.celery_worker import SECRET
from tests.support.headers import fields_of, with_fields
from tests.support.redis_keys import new_namespace
from tests.support.timing import TIMEOUT

DAY = 86_400.0
ALICE = ByokContext("alice", frozenset({"openai"}))


def signed_at(offset: float, *, delay: float = 0.0) -> str:
    """Alice's header, signed with the workers' secret by a publisher whose clock is ``offset`` s off."""
    return HeaderCodec((SECRET.encode(),), clock=lambda: time.time() + offset).encode(ALICE, delay=delay)


@pytest.fixture(params=BROKERS)
def worker(request: pytest.FixtureRequest, worker_factory: Any) -> Any:
    return worker_factory(broker_for(request, request.param), "prefork")


@pytest.fixture(params=BROKERS)
def keys_worker(request: pytest.FixtureRequest, worker_factory: Any, provider_sandbox: ProviderSandbox) -> Any:
    env = {"BYOK_TEST_NAMESPACE": new_namespace("replay"), "OPENAI_BASE_URL": provider_sandbox.url}
    return worker_factory(broker_for(request, request.param), "prefork", app_module="tests.apps.keys_app", env=env)


def run(worker: Any, name: str, header: str, *args: Any) -> Any:
    return worker.app.send_task(name, args, headers={"byok": header})


def test_header_issued_eight_days_ago_is_refused(worker: Any) -> None:
    result = run(worker, "whoami", signed_at(-8 * DAY))
    assert result.get(timeout=TIMEOUT) is None
    assert f"whoami[{result.id}]: BYOK header refused, running without a BYOK context: header expired" in worker.log()


def test_replayed_old_header_cannot_run_a_task_that_requires_a_context(worker: Any) -> None:
    result = run(worker, "whoami_required", signed_at(-8 * DAY))
    with pytest.raises(ByokContextRequired, match=r"requires a BYOK context: header expired: issued 192\.0 h ago"):
        result.get(timeout=TIMEOUT)


def test_header_issued_six_days_ago_is_still_accepted(worker: Any) -> None:
    assert run(worker, "whoami", signed_at(-6 * DAY)).get(timeout=TIMEOUT) == ["alice", ["openai"]]


def test_old_header_of_a_task_delayed_by_two_days_is_still_accepted(worker: Any) -> None:
    # Published eight days ago with a two-day countdown: valid for 7 + 2 days.
    result = run(worker, "whoami", signed_at(-8 * DAY, delay=2 * DAY))
    assert result.get(timeout=TIMEOUT) == ["alice", ["openai"]]


def test_a_copied_header_cannot_claim_a_longer_delay(worker: Any) -> None:
    stretched = with_fields(signed_at(-8 * DAY), d=30 * DAY)
    result = run(worker, "whoami_required", stretched)
    with pytest.raises(ByokContextRequired, match="header signature does not match"):
        result.get(timeout=TIMEOUT)


def test_header_from_two_minutes_ahead_is_accepted(worker: Any) -> None:
    assert run(worker, "whoami", signed_at(120)).get(timeout=TIMEOUT) == ["alice", ["openai"]]


def test_header_from_ten_minutes_ahead_is_refused(worker: Any) -> None:
    result = run(worker, "whoami", signed_at(600))
    assert result.get(timeout=TIMEOUT) is None
    # 600 s ahead when published; a second or so less by the time the worker reads it.
    refused = rf"whoami\[{result.id}\]: BYOK header refused, running without a BYOK context: header was issued"
    assert re.search(refused + r" (59\d|600) s in the future", worker.log())


@pytest.mark.parametrize("schedule", ["countdown", "eta"])
def test_delayed_task_is_published_with_its_delay_signed_in_the_header(keys_worker: Any, schedule: str) -> None:
    options: dict[str, Any] = {"countdown": 2}
    if schedule == "eta":
        options = {"eta": datetime.now(timezone.utc) + timedelta(seconds=2)}
    published = time.time()
    with byok_context("alice", ["openai"]):
        result = keys_worker.app.send_task("keys.header_fields", **options)
    fields = result.get(timeout=TIMEOUT)
    assert fields["context"] is True
    assert fields["d"] in (2, 3)  # whole seconds, rounded up
    assert abs(fields["t"] - published) <= 2


def test_undelayed_task_header_has_no_delay(keys_worker: Any) -> None:
    with byok_context("alice", ["openai"]):
        fields = keys_worker.app.send_task("keys.header_fields").get(timeout=TIMEOUT)
    assert fields["context"] is True and "d" not in fields


def test_retry_keeps_the_original_issue_time(keys_worker: Any) -> None:
    # A retry is the same authorisation, not a new one: max_age bounds the whole life of a task.
    six_days_ago = signed_at(-6 * DAY)
    result = run(keys_worker, "keys.header_fields", six_days_ago, 1)
    fields = result.get(timeout=TIMEOUT)
    assert (fields["retries"], fields["context"]) == (1, True)
    assert fields["t"] == fields_of(six_days_ago)["t"]
