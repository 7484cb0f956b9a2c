"""What the telemetry tests share: failures from the real OpenAI SDK against the loopback sandbox."""

from __future__ import annotations

import openai

from byok_tasks.testing.sandbox import Scenario, sandbox_key


def openai_failure(sandbox_url: str, scenario: Scenario = "invalid") -> openai.APIError:
    client = openai.OpenAI(api_key=sandbox_key("openai", scenario), base_url=f"{sandbox_url}/v1", max_retries=0)
    try:
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    except openai.APIError as exc:
        return exc
    raise AssertionError("the sandbox answered a failing scenario with success")
