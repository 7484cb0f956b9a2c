"""Failures the application handles, and events from any integration, in one process.

A real sentry-sdk client sends to a loopback collector; the real OpenAI SDK fails
against the loopback sandbox, with sentry-sdk's OpenAI integration enabled as it is by
default when openai is installed.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import openai
import pytest
import sentry_sdk
from sentry_sdk.integrations.openai import OpenAIIntegration

from byok_tasks import byok_context, llm_call, report_llm_error
from byok_tasks.failure import LLMFailure
from byok_tasks.sentry import ByokIntegration
from byok_tasks.testing.sandbox import Scenario, sandbox_key
from byok_tasks.testing.sentry_collector import SentryCollector
from tests.support.ids import new_uid
from tests.support.processes import ROOT
from tests.support.sentry import events_where, strings_in, tags


@pytest.fixture
def sentry(sentry_collector: SentryCollector) -> Iterator[dict[str, Any]]:
    """A sentry-sdk client for this test, with every default and auto-enabled integration.

    OpenAI's is named explicitly: with langchain installed, sentry-sdk would otherwise
    leave it off in favour of LangChain's, and it is the one that captures at the call.
    """
    options: dict[str, Any] = {"integrations": [ByokIntegration(), OpenAIIntegration()]}
    yield options
    sentry_sdk.get_client().close()
    sentry_sdk.init()  # no DSN: later tests send nothing


def init(sentry_collector: SentryCollector, options: dict[str, Any], **overrides: Any) -> None:
    sentry_sdk.init(dsn=sentry_collector.dsn, include_local_variables=True, **{**options, **overrides})


def openai_failure(sandbox: Any, scenario: Scenario = "invalid") -> openai.APIError:
    client = openai.OpenAI(api_key=sandbox_key("openai", scenario), base_url=f"{sandbox.url}/v1", max_retries=0)
    try:
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    except openai.APIError as exc:
        return exc
    raise AssertionError("the sandbox answered a failing scenario with success")


def test_handled_failure_is_one_event_although_the_openai_integration_saw_the_call(
    sentry_collector: SentryCollector, provider_sandbox: Any
) -> None:
    uid = new_uid()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.apps.report_in_fresh_process",
            sentry_collector.dsn,
            f"{provider_sandbox.url}/v1",
            uid,
        ],
        cwd=ROOT,
        check=True,
        timeout=60,
    )
    [event] = events_where(sentry_collector, uid=uid, expect=1)
    assert tags(event)["llm.feature"] == "title_generation"
    assert tags(event)["llm.model"] == "gpt-4o-mini"
    assert event["exception"]["values"][-1]["mechanism"] == {"type": "byok", "handled": True}


def test_a_key_of_any_shape_given_with_the_context_is_scrubbed_by_value(
    sentry: dict[str, Any], sentry_collector: SentryCollector
) -> None:
    init(sentry_collector, sentry)
    key = f"acme-{uuid.uuid4().hex}"  # no shape redact() knows
    marker = uuid.uuid4().hex
    with byok_context(new_uid(), keys={"openai": key}):
        config = {"token": key}  # noqa: F841 - a local Sentry would send with the frame
        try:
            raise RuntimeError(f"{marker}: the call with {key} failed")
        except RuntimeError as exc:
            sentry_sdk.capture_exception(exc)
    [event] = events_where(sentry_collector, message=marker, expect=1)
    assert key not in "".join(strings_in(event))
    assert all(key.encode() not in body for body in sentry_collector.raw)


def test_a_key_of_any_shape_is_scrubbed_even_after_its_context_ended(
    sentry: dict[str, Any], sentry_collector: SentryCollector
) -> None:
    init(sentry_collector, sentry)
    key, marker = f"acme-{uuid.uuid4().hex}", uuid.uuid4().hex
    with byok_context(new_uid(), keys={"openai": key}):
        try:
            with llm_call("openai"):
                raise RuntimeError(f"{marker}: the call with {key} failed")
        except RuntimeError as exc:
            failed = exc
    sentry_sdk.capture_exception(failed)  # reported later, outside the context
    [event] = events_where(sentry_collector, message=marker, expect=1)
    assert key not in "".join(strings_in(event))


def test_handled_failure_writes_one_structured_log_record(
    sentry: dict[str, Any], sentry_collector: SentryCollector, provider_sandbox: Any, caplog: pytest.LogCaptureFixture
) -> None:
    init(sentry_collector, sentry)
    uid = new_uid()
    with caplog.at_level(logging.INFO, logger="byok_tasks.failures"), byok_context(uid, ["openai"]):
        failure = report_llm_error(openai_failure(provider_sandbox), feature="title_generation")
    [record] = [r for r in caplog.records if r.name == "byok_tasks.failures"]
    fields = {
        "source": "byok",
        "provider": "openai",
        "feature": "title_generation",
        "operation": "chat",
        "uid": uid,
        "status": 401,
        "reason": "invalid_key",
        "error_type": failure.error_type if failure else None,
    }
    assert {name: getattr(record, name) for name in fields} == fields
    assert record.levelno == logging.WARNING
    assert "[REDACTED]" in record.error and "sk-proj" not in record.getMessage()


def test_report_returns_the_classification(
    sentry: dict[str, Any], sentry_collector: SentryCollector, provider_sandbox: Any
) -> None:
    init(sentry_collector, sentry)
    failure = report_llm_error(openai_failure(provider_sandbox, "nocredit"))
    assert isinstance(failure, LLMFailure)
    assert (failure.source, failure.provider, failure.reason) == ("platform", "openai", "quota")


def test_report_ignores_what_is_not_an_llm_failure(sentry: dict[str, Any], sentry_collector: SentryCollector) -> None:
    init(sentry_collector, sentry)
    marker = uuid.uuid4().hex
    assert report_llm_error(KeyError(marker)) is None
    assert events_where(sentry_collector, message=marker, expect=0) == []


def test_report_never_raises_on_a_hostile_exception(sentry: dict[str, Any], sentry_collector: SentryCollector) -> None:
    init(sentry_collector, sentry)

    class Hostile(Exception):
        def __getattribute__(self, name: str) -> Any:
            raise RuntimeError("no attribute for you")

    assert report_llm_error(Hostile()) is None


def test_event_captured_by_any_integration_is_enriched(
    sentry: dict[str, Any], sentry_collector: SentryCollector, provider_sandbox: Any
) -> None:
    init(sentry_collector, sentry)
    uid = new_uid()
    with byok_context(uid, ["openai"]):
        exc = openai_failure(provider_sandbox, "ratelimited")
        sentry_sdk.capture_exception(exc)
    [event] = events_where(sentry_collector, uid=uid, expect=1)
    assert tags(event)["llm.reason"] == "rate_limit"
    assert event["contexts"]["llm"]["retry_after"] == 20.0
    # A user's transient failure is not theirs to fix, but not ours either: error by default.
    assert event["level"] == "error"


def test_level_and_grouping_are_configurable(sentry_collector: SentryCollector, provider_sandbox: Any) -> None:
    def level(failure: LLMFailure) -> Any:
        return "info" if failure.source == "byok" else "fatal"

    sentry_sdk.init(dsn=sentry_collector.dsn, integrations=[ByokIntegration(level=level, fingerprint=None)])
    try:
        uid = new_uid()
        with byok_context(uid, ["openai"]):
            sentry_sdk.capture_exception(openai_failure(provider_sandbox))
        [event] = events_where(sentry_collector, uid=uid, expect=1)
        assert event["level"] == "info"
        assert "fingerprint" not in event
    finally:
        sentry_sdk.get_client().close()
        sentry_sdk.init()


def test_a_key_in_a_frame_local_or_a_message_never_reaches_sentry(
    sentry: dict[str, Any], sentry_collector: SentryCollector
) -> None:
    init(sentry_collector, sentry)
    key = sandbox_key("openai", "invalid")
    settings = {"openai_api_key": key}  # noqa: F841 - a local Sentry would send with the frame
    marker = uuid.uuid4().hex
    try:
        raise RuntimeError(f"{marker}: could not call OpenAI with {key}")
    except RuntimeError as exc:
        sentry_sdk.add_breadcrumb(message=f"retrying with {key}")
        sentry_sdk.capture_exception(exc)
    [event] = events_where(sentry_collector, message=marker, expect=1)
    assert key not in "".join(strings_in(event))
    assert all(key.encode() not in body for body in sentry_collector.raw)


def test_the_applications_before_send_still_runs(sentry_collector: SentryCollector, provider_sandbox: Any) -> None:
    seen = []

    def before_send(event: Any, hint: Any) -> Any:
        seen.append(event["event_id"])
        event.setdefault("tags", {})["team"] = "summaries"
        return event

    sentry_sdk.init(dsn=sentry_collector.dsn, integrations=[ByokIntegration()], before_send=before_send)
    try:
        uid = new_uid()
        with byok_context(uid, ["openai"]):
            sentry_sdk.capture_exception(openai_failure(provider_sandbox))
        [event] = events_where(sentry_collector, uid=uid, expect=1)
        assert seen == [event["event_id"]]
        assert tags(event)["team"] == "summaries"
    finally:
        sentry_sdk.get_client().close()
        sentry_sdk.init()
