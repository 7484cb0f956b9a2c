"""What ByokIntegration does to the events sentry-sdk's LLM integrations capture at the call.

A real sentry-sdk client with its OpenAI integration sends to the loopback collector; the
real OpenAI SDK fails against the loopback sandbox with a revoked key. The application
catches the error and does not re-raise it.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from typing import Any

import openai
import pytest
import sentry_sdk
from sentry_sdk.integrations.openai import OpenAIIntegration

from byok_tasks import byok_context
from byok_tasks.sentry import ByokIntegration
from byok_tasks.testing.sandbox import sandbox_key
from byok_tasks.testing.sentry_collector import SentryCollector
from tests.support.sentry import QUIET, events_where, tags


@pytest.fixture
def init_sentry(sentry_collector: SentryCollector) -> Iterator[Any]:
    def init(**byok: Any) -> None:
        sentry_sdk.init(dsn=sentry_collector.dsn, integrations=[ByokIntegration(**byok), OpenAIIntegration()])

    yield init
    sentry_sdk.get_client().close()
    sentry_sdk.init()  # no DSN: later tests send nothing


def swallow_a_revoked_key_failure(sandbox: Any, uid: str) -> None:
    client = openai.OpenAI(api_key=sandbox_key("openai", "invalid"), base_url=f"{sandbox.url}/v1", max_retries=0)
    # Handled by the application, and not reported.
    with byok_context(uid, ["openai"]), contextlib.suppress(openai.AuthenticationError):
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])


def test_a_swallowed_llm_error_sends_no_event_by_default(
    init_sentry: Any, sentry_collector: SentryCollector, provider_sandbox: Any
) -> None:
    init_sentry()
    before = len(sentry_collector.quiet_for(QUIET))
    swallow_a_revoked_key_failure(provider_sandbox, f"user-{uuid.uuid4().hex[:12]}")
    sentry_sdk.flush()
    assert len(sentry_collector.quiet_for(QUIET)) == before


def test_call_events_keeps_the_call_level_event_tagged_and_handled(
    init_sentry: Any, sentry_collector: SentryCollector, provider_sandbox: Any
) -> None:
    init_sentry(call_events=True)
    uid = f"user-{uuid.uuid4().hex[:12]}"
    swallow_a_revoked_key_failure(provider_sandbox, uid)
    [event] = events_where(sentry_collector, uid=uid, expect=1)
    assert tags(event)["llm.source"] == "byok" and tags(event)["llm.reason"] == "invalid_key"
    assert tags(event)["llm.captured_at"] == "call"
    assert event["exception"]["values"][-1]["mechanism"]["handled"] is True
    assert event["fingerprint"][-1] == "call"
