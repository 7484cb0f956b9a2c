"""A failed LLM task reaches Sentry once, tagged for triage, whatever captured it.

Real Celery workers with a real sentry-sdk send envelopes to a loopback collector; the
tasks call the real OpenAI SDK against the loopback sandbox.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest

from byok_tasks import byok_context, redact
from byok_tasks.testing.sentry_collector import SentryCollector
from tests.support.ids import new_uid
from tests.support.sentry import events_where, strings_in, tags
from tests.support.timing import TIMEOUT

POOLS = ["prefork", "threads", "solo", "gevent"]


@pytest.fixture(scope="module")
def sentry_env(provider_sandbox: Any, sentry_collector: SentryCollector) -> dict[str, str]:
    return {"SENTRY_DSN": sentry_collector.dsn, "OPENAI_BASE_URL": f"{provider_sandbox.url}/v1"}


@pytest.fixture(params=["CeleryIntegration on", "CeleryIntegration off"])
def worker(request: pytest.FixtureRequest, worker_factory: Any, redis_url: str, sentry_env: dict[str, str]) -> Any:
    env = dict(sentry_env)
    if request.param.endswith("off"):
        env["BYOK_TEST_WITHOUT_CELERY_INTEGRATION"] = "1"
    return worker_factory(redis_url, "threads", env=env)


def run(worker: Any, name: str, *args: Any, uid: str, providers: list[str]) -> Any:
    with byok_context(uid, providers):
        result = worker.app.send_task(name, args)
    # An ignored task stores no result: the worker's log says when it is done.
    deadline = time.monotonic() + TIMEOUT
    while not result.ready() and f"[{result.id}] ignored" not in worker.log():
        assert time.monotonic() < deadline, f"{name} did not finish"
        time.sleep(0.05)
    if not result.ready():
        return None
    try:
        return result.get(timeout=TIMEOUT)
    except Exception as exc:  # the task's failure, as the caller sees it
        return exc


def test_byok_invalid_key_is_one_warning_event_tagged_for_triage(
    worker: Any, sentry_collector: SentryCollector
) -> None:
    uid = new_uid()
    run(worker, "llm.summarize", "invalid", uid=uid, providers=["openai"])
    [event] = events_where(sentry_collector, uid=uid, expect=1)
    expected = {
        "llm.source": "byok",
        "llm.provider": "openai",
        "llm.reason": "invalid_key",
        "llm.status": "401",
        "llm.model": "gpt-4o-mini",
        "llm.feature": "llm.summarize",
        "llm.operation": "chat",
        "byok.uid": uid,
    }
    assert {name: tags(event).get(name) for name in expected} == expected
    assert event["level"] == "warning"
    assert event["user"]["id"] == uid
    assert event["fingerprint"] == ["llm", "byok", "openai", "invalid_key", "llm.summarize"]
    assert event["contexts"]["llm"]["reason"] == "invalid_key"


def test_platform_quota_failure_is_an_error_grouped_apart(worker: Any, sentry_collector: SentryCollector) -> None:
    uid = new_uid()
    # The user's context says OpenAI is not theirs: the call used the platform's key.
    run(worker, "llm.summarize", "nocredit", uid=uid, providers=["anthropic"])
    [event] = events_where(sentry_collector, uid=uid, expect=1)
    # Nothing else about this failure, such as its structured log record, became an event.
    assert [e for e in sentry_collector.events if uid in json.dumps(e)] == [event]
    assert tags(event)["llm.source"] == "platform"
    assert tags(event)["llm.reason"] == "quota"
    assert event["level"] == "error"
    assert event["fingerprint"] == ["llm", "platform", "openai", "quota", "llm.summarize"]
    assert event.get("user", {}).get("id") != uid


def test_failure_that_a_retry_recovers_sends_nothing(worker: Any, sentry_collector: SentryCollector) -> None:
    uid = new_uid()
    assert run(worker, "llm.summarize_with_retries", 1, uid=uid, providers=["openai"]) == (
        "A short summary from the sandbox."
    )
    assert events_where(sentry_collector, uid=uid, expect=0) == []


def test_failure_that_exhausts_its_retries_sends_one_event(worker: Any, sentry_collector: SentryCollector) -> None:
    uid = new_uid()
    run(worker, "llm.summarize_with_retries", 5, uid=uid, providers=["openai"])
    [event] = events_where(sentry_collector, uid=uid, expect=1)
    assert tags(event)["llm.reason"] == "invalid_key"


def test_what_the_application_logs_after_the_failure_is_still_an_event(
    worker: Any, sentry_collector: SentryCollector
) -> None:
    uid = new_uid()
    with byok_context(uid, ["openai"]):
        task_id = worker.app.send_task("llm.summarize_then_clean_up").id
    [failure] = events_where(sentry_collector, uid=uid, expect=1)
    line = f"cleanup after task {task_id} did not finish"
    events = sentry_collector.wait_until(lambda events: any(line in json.dumps(e) for e in events), TIMEOUT)
    assert [e["logentry"]["formatted"] for e in events if line in json.dumps(e)] == [line]
    assert tags(failure)["llm.reason"] == "invalid_key"


@pytest.mark.parametrize("task", ["llm.expected_failure", "llm.ignored", "llm.rejected"])
def test_expected_ignored_and_rejected_failures_send_nothing(
    worker: Any, sentry_collector: SentryCollector, task: str
) -> None:
    uid = new_uid()
    run(worker, task, uid=uid, providers=["openai"])
    assert events_where(sentry_collector, uid=uid, expect=0) == []


def test_failure_the_app_handles_and_reports_sends_one_event(worker: Any, sentry_collector: SentryCollector) -> None:
    uid = new_uid()
    assert run(worker, "llm.handled", uid=uid, providers=["openai"]) == "fallback"
    [event] = events_where(sentry_collector, uid=uid, expect=1)
    assert tags(event)["llm.feature"] == "summary_with_fallback"
    assert event["exception"]["values"][-1]["mechanism"]["handled"] is True


def test_failure_the_app_reports_and_raises_again_sends_one_event(
    worker: Any, sentry_collector: SentryCollector
) -> None:
    uid = new_uid()
    assert isinstance(run(worker, "llm.reported_then_raised", uid=uid, providers=["openai"]), Exception)
    [event] = events_where(sentry_collector, uid=uid, expect=1)
    assert tags(event)["llm.feature"] == "summary"
    assert event["exception"]["values"][-1]["mechanism"]["handled"] is True
    # Storm control would hide a second event of this user's; the log shows there was none.
    assert worker.log().count(f"uid='{uid}'") == 1


def test_no_key_material_reaches_sentry(worker: Any, sentry_collector: SentryCollector) -> None:
    # Two users, so that storm control lets both events through.
    echoed, in_a_local = new_uid(), new_uid()
    run(worker, "llm.summarize", "invalid", uid=echoed, providers=["openai"])
    run(worker, "llm.key_in_a_local", uid=in_a_local, providers=["openai"])
    events = events_where(sentry_collector, uid=echoed, expect=1) + events_where(
        sentry_collector, uid=in_a_local, expect=1
    )
    assert len(events) == 2
    for body in sentry_collector.raw:
        assert b"sk-proj-invalid-" not in body
    for event in sentry_collector.events:
        for text in strings_in(event):
            assert redact(text) == text  # nothing of any key shape is left to redact
    assert all("[REDACTED]" in json.dumps(event) for event in events)


@pytest.mark.parametrize("pool", POOLS)
def test_tags_never_bleed_into_the_next_tasks_event(
    pool: str, worker_factory: Any, redis_url: str, sentry_env: dict[str, str], sentry_collector: SentryCollector
) -> None:
    pool_worker = worker_factory(redis_url, pool, env=sentry_env)
    uid, marker = new_uid(), uuid.uuid4().hex
    for _ in range(6):
        run(pool_worker, "llm.summarize", "invalid", uid=uid, providers=["openai"])
        pool_worker.app.send_task("plain.failure", (marker,)).get(timeout=TIMEOUT, propagate=False)
    plain = events_where(sentry_collector, message=marker, expect=6)
    assert len(plain) == 6
    for event in plain:
        assert not any(name.startswith(("llm.", "byok.")) for name in tags(event))
        assert event.get("user", {}).get("id") != uid
        assert "llm" not in event.get("contexts", {})
