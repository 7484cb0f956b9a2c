"""OpenRouter, through the openai SDK; the request keeps openrouter.ai as its host.

Error codes: https://openrouter.ai/docs/api-reference/errors — ``error.code`` repeats
the HTTP status, 402 is credits, 403 is moderation.
"""

from __future__ import annotations

from typing import Any

from byok_tasks import classify
from byok_tasks.testing.provider_server import ProviderServer, hang_up, json_reply, stall
from tests.support.clients import STALL, STALL_TIMEOUT, chat, openai_client_for_host, raised_by
from tests.support.fixtures import loopback_only_fixture, provider_server_fixture, server_fixture  # noqa: F401

OPENROUTER_API = "https://openrouter.ai/api/v1"


def openrouter_failure(server: ProviderServer, status: int, error: dict[str, Any]):  # type: ignore[no-untyped-def]
    server.reply(json_reply(status, {"error": error}))
    failure = classify(raised_by(chat(openai_client_for_host(server, OPENROUTER_API), "openai/gpt-4o")))
    assert failure is not None
    assert failure.provider == "openrouter"
    return failure


def test_openrouter_402_insufficient_credits_is_quota(server: ProviderServer) -> None:
    # Body: https://github.com/Gitlawb/openclaude/issues/43
    failure = openrouter_failure(
        server,
        402,
        {
            "message": "Insufficient credits. This account never purchased credits. Make sure your key is on "
            "the correct account or org, and if so, purchase more at https://openrouter.ai/settings/credits",
            "code": 402,
        },
    )
    assert (failure.reason, failure.status, failure.code, failure.retryable) == ("quota", 402, None, False)


def test_openrouter_403_moderation_is_content_filter(server: ProviderServer) -> None:
    # Shape: https://openrouter.ai/docs/api-reference/errors ("Moderation Errors", metadata with reasons
    # and flagged_input); message reconstructed from the docs' 403 description.
    failure = openrouter_failure(
        server,
        403,
        {
            "message": "Your chosen model requires moderation and your input was flagged",
            "code": 403,
            "metadata": {
                "reasons": ["violence"],
                "flagged_input": "...",
                "provider_name": "OpenAI",
                "model_slug": "openai/gpt-4o",
            },
        },
    )
    assert failure.reason == "content_filter"


def test_user_not_found_401_is_invalid_key(server: ProviderServer) -> None:
    # Body: https://github.com/apurvsinghgautam/robin/issues/103
    failure = openrouter_failure(server, 401, {"message": "User not found.", "code": 401})
    assert failure.reason == "invalid_key"


def test_rate_limited_429_is_rate_limit(server: ProviderServer) -> None:
    # 429 "You are being rate limited": https://openrouter.ai/docs/api-reference/errors; message reconstructed.
    failure = openrouter_failure(server, 429, {"message": "Rate limit exceeded: limit_rpm/openai/gpt-4o", "code": 429})
    assert (failure.reason, failure.retryable) == ("rate_limit", True)


def test_free_models_per_day_limit_is_quota(server: ProviderServer) -> None:
    # Body: https://github.com/Gitlawb/openclaude/issues/936
    failure = openrouter_failure(
        server,
        429,
        {
            "message": "Rate limit exceeded: free-models-per-day. "
            "Add 10 credits to unlock 1000 free model requests per day",
            "code": 429,
            "metadata": {"headers": {"X-RateLimit-Limit": "50", "X-RateLimit-Remaining": "0"}},
        },
    )
    assert failure.reason == "quota"


def test_no_endpoints_for_model_is_model_not_found(server: ProviderServer) -> None:
    # Body: https://github.com/chatboxai/chatbox/issues/2743
    failure = openrouter_failure(
        server, 404, {"message": "No endpoints found for deepseek/deepseek-chat-v3.1:free.", "code": 404}
    )
    assert failure.reason == "model_not_found"


def test_maximum_context_length_is_context_length(server: ProviderServer) -> None:
    # Message: https://github.com/OpenHands/OpenHands/issues/9937
    failure = openrouter_failure(
        server,
        400,
        {
            "message": "This endpoint's maximum context length is 131072 tokens. However, you requested about 138956 "
            "tokens (7884 of text input, 131072 in the output). Please reduce the length of either one, or use the "
            '"middle-out" transform to compress your prompt automatically.',
            "code": 400,
        },
    )
    assert failure.reason == "context_length"


def test_model_down_502_is_server_error(server: ProviderServer) -> None:
    # Body: https://github.com/ai-christianson/RA.Aid/issues/41 (code 502 with the upstream's raw error).
    failure = openrouter_failure(
        server,
        502,
        {"message": "Provider returned error", "code": 502, "metadata": {"provider_name": "DeepInfra", "raw": "..."}},
    )
    assert (failure.reason, failure.retryable) == ("server_error", True)


def test_no_available_provider_503_is_overloaded(server: ProviderServer) -> None:
    # 503 "There is no available model provider that meets your routing requirements":
    # https://openrouter.ai/docs/api-reference/errors; message reconstructed.
    failure = openrouter_failure(
        server, 503, {"message": "No available model provider that meets your routing requirements", "code": 503}
    )
    assert failure.reason == "overloaded"


def test_408_request_timed_out_is_timeout(server: ProviderServer) -> None:
    # 408 "Your request timed out": https://openrouter.ai/docs/api-reference/errors; message reconstructed.
    failure = openrouter_failure(server, 408, {"message": "Request timed out", "code": 408})
    assert (failure.reason, failure.retryable) == ("timeout", True)


def test_client_timeout_is_timeout(server: ProviderServer) -> None:
    server.reply(stall(STALL))
    failure = classify(raised_by(chat(openai_client_for_host(server, OPENROUTER_API, timeout=STALL_TIMEOUT))))
    assert failure is not None and (failure.provider, failure.reason) == ("openrouter", "timeout")


def test_dropped_connection_is_connection(server: ProviderServer) -> None:
    server.reply(hang_up())
    failure = classify(raised_by(chat(openai_client_for_host(server, OPENROUTER_API))))
    assert failure is not None and (failure.provider, failure.reason) == ("openrouter", "connection")
