"""What ByokIntegration does to the events sentry-sdk's LLM integrations capture at the call.

In a fresh process (tests/apps/swallow_in_fresh_process.py) a real sentry-sdk client with
its OpenAI integration sends to the loopback collector; the real OpenAI SDK fails against
the loopback sandbox with a revoked key, and the application swallows the error.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from typing import Any

from byok_tasks.testing.sentry_collector import SentryCollector
from tests.support.processes import ROOT
from tests.support.sentry import QUIET, events_where, tags


def swallow_in_a_fresh_process(collector: SentryCollector, sandbox: Any, uid: str, *, call_events: bool) -> None:
    subprocess.run(
        [sys.executable, "-m", "tests.apps.swallow_in_fresh_process", collector.dsn, f"{sandbox.url}/v1", uid,
         "1" if call_events else "0"],
        cwd=ROOT,
        check=True,
        timeout=120,
    )  # fmt: skip


def test_a_swallowed_llm_error_sends_no_event_by_default(
    sentry_collector: SentryCollector, provider_sandbox: Any
) -> None:
    before = len(sentry_collector.quiet_for(QUIET))
    swallow_in_a_fresh_process(sentry_collector, provider_sandbox, f"user-{uuid.uuid4().hex[:12]}", call_events=False)
    assert len(sentry_collector.quiet_for(QUIET)) == before


def test_call_events_keeps_the_call_level_event_tagged_and_handled(
    sentry_collector: SentryCollector, provider_sandbox: Any
) -> None:
    uid = f"user-{uuid.uuid4().hex[:12]}"
    swallow_in_a_fresh_process(sentry_collector, provider_sandbox, uid, call_events=True)
    [event] = events_where(sentry_collector, uid=uid, expect=1)
    assert tags(event)["llm.source"] == "byok" and tags(event)["llm.reason"] == "invalid_key"
    assert tags(event)["llm.captured_at"] == "call"
    assert event["exception"]["values"][-1]["mechanism"]["handled"] is True
    assert event["fingerprint"][-1] == "call"
