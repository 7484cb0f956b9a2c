"""The first ten minutes: `make demo` tells the story and leaves nothing running; triage reads events."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import sentry_sdk

from byok_tasks import byok_context
from byok_tasks.sentry import ByokIntegration
from byok_tasks.testing.sandbox import sandbox_key
from byok_tasks.testing.sentry_collector import SentryCollector
from tests.support.processes import ROOT


def demo_env(tmp_path: Path) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if name not in ("BROKER_URL", "REDIS_URL", "SENTRY_DSN")}
    # Wide enough that rich does not wrap the view; the demo writes its events file in the cwd.
    return {**env, "COLUMNS": "140", "PYTHONPATH": str(ROOT)}


def worker_pid(output: str) -> int:
    match = re.search(r"\(pid (\d+)\)", output)
    assert match, output
    return int(match.group(1))


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.mark.timeout(240)
def test_demo_tells_the_whole_story_and_stops_everything(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "demo"],
        cwd=tmp_path,
        env=demo_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=200,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    for line in (
        "llm.source:platform",
        "anthropic quota: 59 failures, 59 events",
        "llm.source:byok llm.provider:openai llm.reason:invalid_key",
        "held back, each still in the structured log",
        "API keys: found 0",
        "refused for lack of a BYOK context",
    ):
        assert line in output, output
    # Ben's revoked key: called until the breaker opened, then refused without a call.
    called = int(found(r"openai invalid_key: (\d+) failures, 1 event, 1 user", output))
    refused = int(found(r"openai key_unavailable: (\d+) failures, 1 event, 1 user", output))
    assert called >= 3 and called + refused == 30, output
    assert gone(worker_pid(output))
    assert (tmp_path / "demo-events.json").exists()
    assert_key_health_shown(output, called)


def found(pattern: str, output: str) -> str:
    match = re.search(pattern, output)
    assert match is not None, f"{pattern!r} not in:\n{output}"
    return match[1]


def assert_key_health_shown(output: str, ben_called: int) -> None:
    """The demo's key-health part: each user's key_status, the hook's calls, the calls not made."""
    # Each revoked or empty key's user told once, under the key's own reason; nobody else.
    told = re.findall(r"tell_user\(uid='(\w+)', provider='(\w+)', reason='(\w+)', failures=\d+\)", output)
    assert sorted(told) == [("ben", "openai", "invalid_key"), ("chloe", "anthropic", "quota")], output
    # key_status of every demo user, a row each: the dead keys' breakers open, the others unrecorded.
    rows = {
        cells[0]: cells[1:]
        for line in output.splitlines()
        if len(cells := [cell.strip() for cell in line.strip("│ ").split("│")]) == 6
    }
    assert rows["ben"] == ["openai", "invalid_key", "30", "open", str(30 - ben_called)], output
    assert rows["chloe"][:2] == ["anthropic", "quota"] and rows["chloe"][3] == "open", output
    for uid in ("ana", "dev", "emma", "farid"):
        assert rows[uid] == ["-", "nothing recorded", "0", "closed", "0"], output
    chloe_refused = int(rows["chloe"][4])
    saved = re.search(r"The breaker saved (\d+) provider calls: (.*)", output)
    assert saved is not None, output
    assert int(saved[1]) == 30 - ben_called + chloe_refused > 0
    assert f"ben's openai key was called {ben_called} times for 30 tasks" in saved[2]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "kill"])
def test_ctrl_c_or_kill_stops_the_demo_and_everything_it_started(tmp_path: Path, stop: signal.Signals) -> None:
    demo = subprocess.Popen(
        [sys.executable, "-m", "demo"],
        cwd=tmp_path,
        env=demo_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert demo.stdout is not None
    output = ""
    while "Who is asking" not in output:
        line = demo.stdout.readline()
        assert line, output
        output += line
    demo.send_signal(stop)
    rest, _ = demo.communicate(timeout=60)
    assert "everything the demo started has been stopped" in rest, output + rest
    assert demo.returncode == -stop, output + rest  # it dies of the signal, as a shell expects
    pid = worker_pid(output)
    deadline = time.monotonic() + 10
    while not gone(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert gone(pid)


def test_triage_command_groups_saved_events_by_source_provider_and_reason(
    tmp_path: Path, sentry_collector: SentryCollector, provider_sandbox: Any
) -> None:
    import openai

    sentry_sdk.init(dsn=sentry_collector.dsn, integrations=[ByokIntegration()])
    try:
        uids = [f"user-{uuid.uuid4().hex[:8]}" for _ in range(3)]
        for uid in uids:
            with byok_context(uid, ["openai"]):
                client = openai.OpenAI(
                    api_key=sandbox_key("openai", "invalid"), base_url=f"{provider_sandbox.url}/v1", max_retries=0
                )
                try:
                    client.models.list()
                except openai.APIError as exc:
                    sentry_sdk.capture_exception(exc)
        sentry_sdk.flush()
    finally:
        sentry_sdk.get_client().close()
        sentry_sdk.init()
    events = [e for e in sentry_collector.wait_for(3) if e.get("tags", {}).get("byok.uid") in uids]
    path = tmp_path / "events.json"
    path.write_text(json.dumps(events))

    done = subprocess.run(
        [sys.executable, "-m", "byok_tasks.cli", "triage", str(path)],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "140"},
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "llm.source:byok" in done.stdout
    assert "openai invalid_key: 3 failures, 3 events, 3 users" in done.stdout
    assert "llm.source:byok llm.provider:openai llm.reason:invalid_key" in done.stdout


def test_triage_command_explains_an_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "events.json"
    path.write_text('{"not": "events"')
    done = subprocess.run(
        [sys.executable, "-m", "byok_tasks.cli", "triage", str(path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0
    assert "byok-tasks triage:" in done.stderr
