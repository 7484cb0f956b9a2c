"""A provider sandbox on loopback: answers like OpenAI and Anthropic, decided by the API key.

Nothing here is a real provider. The key sent with a request names what happens to it,
so a whole fleet of users and a platform account can be played at once, by tasks running
concurrently in real worker processes::

    sk-proj-ok-...            OpenAI answers normally
    sk-proj-invalid-...       401 invalid_api_key (the key echoed, masked, as OpenAI does)
    sk-proj-nocredit-...      429 insufficient_quota
    sk-proj-ratelimited-...   429 rate_limit_exceeded, retry-after 20
    sk-ant-api03-ok-...       Anthropic answers normally
    sk-ant-api03-invalid-...  401 authentication_error
    sk-ant-api03-nocredit-... 400 "Your credit balance is too low"
    sk-ant-api03-overloaded-... 529 overloaded_error

:func:`sandbox_key` makes such a key. The bodies follow the providers' documented error
formats: https://platform.openai.com/docs/guides/error-codes and
https://docs.anthropic.com/en/api/errors.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import secrets
import signal
import threading
import time
from typing import Literal

from .provider_server import ProviderServer, RecordedRequest, Reply, json_reply

__all__ = ["ProviderSandbox", "Scenario", "answer", "sandbox_key"]

Scenario = Literal["ok", "invalid", "nocredit", "ratelimited", "overloaded"]
_SCENARIOS: dict[str, tuple[Scenario, ...]] = {
    "openai": ("ok", "invalid", "nocredit", "ratelimited"),
    "anthropic": ("ok", "invalid", "nocredit", "overloaded"),
}
_PREFIX = {"openai": "sk-proj-", "anthropic": "sk-ant-api03-"}


def sandbox_key(provider: Literal["openai", "anthropic"], scenario: Scenario) -> str:
    """A key of the provider's shape that makes the sandbox play ``scenario``."""
    return f"{_PREFIX[provider]}{scenario}-{secrets.token_urlsafe(36)}"


def _scenario(key: str) -> str:
    for prefix in _PREFIX.values():
        if key.startswith(prefix):
            return key[len(prefix) :].split("-", 1)[0]
    return "invalid"


def answer(request: RecordedRequest) -> Reply:
    """The sandbox's answer to one request."""
    headers = {name.lower(): value for name, value in request.headers.items()}
    # Anthropic's SDK sends x-api-key, or a bearer token in its newer releases.
    key = headers.get("x-api-key") or headers.get("authorization", "").removeprefix("Bearer ")
    if request.path.rstrip("/").endswith("/messages"):
        return _anthropic(request, key)
    return _openai(request, key)


def _openai(request: RecordedRequest, key: str) -> Reply:
    scenario = _scenario(key)
    if scenario == "ok":
        return json_reply(
            200,
            {
                "id": f"chatcmpl-{secrets.token_hex(8)}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": _model(request, "gpt-4o-mini"),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "A short summary from the sandbox."},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 42, "completion_tokens": 8, "total_tokens": 50},
            },
        )
    if scenario == "nocredit":
        return json_reply(
            429,
            {
                "error": {
                    "message": "You exceeded your current quota, please check your plan and billing details.",
                    "type": "insufficient_quota",
                    "param": None,
                    "code": "insufficient_quota",
                }
            },
        )
    if scenario == "ratelimited":
        return json_reply(
            429,
            {
                "error": {
                    "message": "Rate limit reached for gpt-4o-mini on requests per min (RPM): Limit 3, Used 3, "
                    "Requested 1. Please try again in 20s.",
                    "type": "requests",
                    "param": None,
                    "code": "rate_limit_exceeded",
                }
            },
            headers={"retry-after": "20", "x-ratelimit-limit-requests": "3", "x-ratelimit-remaining-requests": "0"},
        )
    masked = f"{key[:8]}{'*' * 20}{key[-4:]}" if len(key) > 12 else "***"
    return json_reply(
        401,
        {
            "error": {
                "message": f"Incorrect API key provided: {masked}. You can find your API key at "
                "https://platform.openai.com/account/api-keys.",
                "type": "invalid_request_error",
                "param": None,
                "code": "invalid_api_key",
            }
        },
    )


def _anthropic(request: RecordedRequest, key: str) -> Reply:
    scenario = _scenario(key)
    headers = {"request-id": f"req_{secrets.token_hex(12)}"}
    if scenario == "ok":
        return json_reply(
            200,
            {
                "id": f"msg_{secrets.token_hex(12)}",
                "type": "message",
                "role": "assistant",
                "model": _model(request, "claude-sonnet-5"),
                "content": [{"type": "text", "text": "- Send the contract\n- Book the review"}],
                "stop_reason": "end_turn",
                "stop_sequence": None,
                "usage": {"input_tokens": 40, "output_tokens": 12},
            },
            headers=headers,
        )
    error_type, status, message = {
        "nocredit": (
            "invalid_request_error",
            400,
            "Your credit balance is too low to access the Anthropic API. "
            "Please go to Plans & Billing to upgrade or purchase credits.",
        ),
        "overloaded": ("overloaded_error", 529, "Overloaded"),
        "ratelimited": ("rate_limit_error", 429, "Number of request tokens has exceeded your per-minute rate limit"),
    }.get(scenario, ("authentication_error", 401, "invalid x-api-key"))
    return json_reply(status, {"type": "error", "error": {"type": error_type, "message": message}}, headers=headers)


def _model(request: RecordedRequest, default: str) -> str:
    try:
        return str(json.loads(request.body).get("model") or default)
    except (ValueError, AttributeError):
        return default


class ProviderSandbox(ProviderServer):
    """A :class:`ProviderServer` that answers every request by its key instead of from a script."""

    def __init__(self, *, port: int = 0) -> None:
        super().__init__(respond=answer, port=port)


def main() -> None:
    """``python -m byok_tasks.testing.sandbox``: the sandbox on loopback until Ctrl-C or SIGTERM."""
    parser = argparse.ArgumentParser(description="OpenAI and Anthropic on loopback, answering by the key they are sent")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    with ProviderSandbox(port=args.port) as sandbox:
        print(f"OPENAI_BASE_URL={sandbox.url}/v1", flush=True)
        print(f"ANTHROPIC_BASE_URL={sandbox.url}", flush=True)
        for provider, scenarios in _SCENARIOS.items():
            shapes = ", ".join(f"{_PREFIX[provider]}{scenario}-..." for scenario in scenarios)
            print(f"{provider} keys: {shapes}", flush=True)
        _wait_for_a_stop()


def _wait_for_a_stop() -> None:
    # SIGTERM too: a sandbox started in the background of a script never sees Ctrl-C.
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with contextlib.suppress(KeyboardInterrupt):
        stop.wait()


if __name__ == "__main__":
    main()
