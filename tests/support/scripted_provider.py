"""An OpenAI-compatible provider on loopback that answers from a script and notes when each call arrived.

The retry tests count calls and measure the waits between them where the calls land, at
the provider, rather than trusting the worker's own account of what it did.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterator

import pytest

from byok_tasks.testing.provider_server import ProviderServer, RecordedRequest, Reply, json_reply


def openai_error(status: int, code: str, message: str, *, headers: dict[str, str] | None = None) -> Reply:
    return json_reply(
        status, {"error": {"message": message, "type": code, "param": None, "code": code}}, headers=headers
    )


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
    429, "rate_limit_exceeded", "Rate limit reached for gpt-4o-mini on requests per min.", headers={"retry-after": "1"}
)
OVERLOADED = json_reply(503, {"error": {"message": "The engine is currently overloaded, please try again later"}})
INVALID_KEY = openai_error(401, "invalid_api_key", "Incorrect API key provided: sk-test***-key.")


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
            self._script, self._last, self.arrivals = deque(replies), replies[-1], []

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


@pytest.fixture(scope="module", name="scripted_provider")
def scripted_provider_fixture() -> Iterator[ScriptedProvider]:
    provider = ScriptedProvider()
    with provider.server:
        yield provider
