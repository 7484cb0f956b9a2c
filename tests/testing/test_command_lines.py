"""The sandbox and the collector as a newcomer starts them: from the command line, in the background."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
import sentry_sdk

from byok_tasks.testing.sandbox import sandbox_key
from tests.support.timing import TIMEOUT


def started(*args: str) -> subprocess.Popen[str]:
    # Started the way a script starts a background job: SIGINT ignored, so only SIGTERM stops it.
    return subprocess.Popen(
        [sys.executable, "-m", *args],
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )


@pytest.fixture
def restore_sentry() -> Iterator[None]:
    yield
    sentry_sdk.get_client().close()
    sentry_sdk.init()  # no DSN: later tests send nothing


def test_the_sandbox_prints_where_to_point_the_sdk_and_answers_there() -> None:
    sandbox = started("byok_tasks.testing.sandbox")
    try:
        assert sandbox.stdout is not None
        base_url = sandbox.stdout.readline().strip().removeprefix("OPENAI_BASE_URL=")
        client = openai.OpenAI(api_key=sandbox_key("openai", "nocredit"), base_url=base_url, max_retries=0)
        with pytest.raises(openai.RateLimitError, match="exceeded your current quota"):
            client.models.list()
    finally:
        sandbox.terminate()
    assert sandbox.wait(TIMEOUT) == 0


def test_the_collector_saves_its_events_when_terminated(tmp_path: Path, restore_sentry: None) -> None:
    out = tmp_path / "events.json"
    collector = started("byok_tasks.testing.sentry_collector", "--out", str(out))
    try:
        assert collector.stdout is not None
        sentry_sdk.init(dsn=collector.stdout.readline().strip())
        sentry_sdk.capture_message("saved on SIGTERM")
        sentry_sdk.flush(timeout=TIMEOUT)
    finally:
        collector.terminate()
    assert collector.wait(TIMEOUT) == 0
    assert "saved on SIGTERM" in json.dumps(json.loads(out.read_text()))
