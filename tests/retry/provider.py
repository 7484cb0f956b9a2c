"""An OpenAI-compatible provider on loopback that answers from a script and notes when each call arrived.

The retry tests count calls and measure the waits between them where the calls land, at
the provider, rather than trusting the worker's own account of what it did.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterator
from typing import Protocol

import pytest

from byok_tasks.testing.provider_server import ProviderServer, RecordedRequest, Reply, hang_up, json_reply, stall
from tests.apps.llm_retry_jobs import CLIENT_TIMEOUT  # the SDK's timeout in the test jobs; a stall outlasts it


def openai_error(status: int, code: str, message: str, *, headers: dict[str, str] | None = None) -> Reply:
    body = {"error": {"message": message, "type": code, "param": None, "code": code}}
    return json_reply(status, body, headers=headers)


OK = json_reply(
    200,
    {
        "id": "chatcmpl-retry",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "summary"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    },
)
RATE_LIMITED = openai_error(
    429, "rate_limit_exceeded", "Rate limit reached for gpt-4o-mini on requests per min (RPM): Limit 3, Used 3.",
    headers={"retry-after": "1"},
)  # fmt: skip
# What each reason looks like from OpenAI, with no retry-after: the waits are the policy's own backoff.
FAILURES: dict[str, Reply] = {
    "rate_limit": openai_error(429, "rate_limit_exceeded", "Rate limit reached for gpt-4o-mini on requests per min."),
    "overloaded": json_reply(503, {"error": {"message": "The engine is currently overloaded, please try again later"}}),
    "server_error": openai_error(500, "server_error", "The server had an error while processing your request."),
    "timeout": stall(CLIENT_TIMEOUT * 3),
    "connection": hang_up(),
    "quota": openai_error(429, "insufficient_quota", "You exceeded your current quota, please check your plan."),
    "invalid_key": openai_error(401, "invalid_api_key", "Incorrect API key provided: sk-test***-key."),
    "permission": openai_error(403, "unsupported_country_region_territory", "Country or region not supported"),
    "context_length": openai_error(
        400, "context_length_exceeded", "This model's maximum context length is 128000 tokens."
    ),
    "content_filter": openai_error(400, "content_policy_violation", "Your request was rejected by the safety system."),
}
RETRIED = ["rate_limit", "overloaded", "server_error", "timeout", "connection"]
NOT_RETRIED = ["quota", "invalid_key", "permission", "context_length", "content_filter"]


class ScriptedProvider:
    """Answers calls in order from :meth:`script`; every call past the script gets the last answer."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._script: deque[Reply] = deque()
        self._last: Reply = OK
        self.arrivals: list[float] = []
        self.server = ProviderServer(respond=self._answer)

    @property
    def base_url(self) -> str:
        return f"{self.server.url}/v1"

    def script(self, *replies: Reply) -> None:
        with self._lock:
            self._script = deque(replies)
            self._last = replies[-1]
            self.arrivals = []

    def _answer(self, request: RecordedRequest) -> Reply:
        with self._lock:
            self.arrivals.append(time.monotonic())
            return self._script.popleft() if self._script else self._last

    @property
    def calls(self) -> int:
        with self._lock:
            return len(self.arrivals)

    def waits(self) -> list[float]:
        """Seconds between one call's arrival and the next."""
        with self._lock:
            return [later - earlier for earlier, later in zip(self.arrivals, self.arrivals[1:], strict=False)]

    def calls_after_quiet(self, seconds: float) -> int:
        """The number of calls once none has come for ``seconds``: a retry that would still come has come."""
        while True:
            before = self.calls
            time.sleep(seconds)
            if self.calls == before:
                return before


@pytest.fixture(scope="module", name="provider")
def provider_fixture() -> Iterator[ScriptedProvider]:
    provider = ScriptedProvider()
    with provider.server:
        yield provider


class _Logged(Protocol):
    def log(self) -> str: ...


def failure_records(worker: _Logged, feature: str) -> list[str]:
    """The structured ``llm failure`` log lines the worker wrote for ``feature``."""
    return [line for line in worker.log().splitlines() if "llm failure " in line and f"feature={feature!r}" in line]
