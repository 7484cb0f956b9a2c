"""Groq, through the groq SDK (on httpx) and through the openai SDK at api.groq.com.

Bodies: https://console.groq.com/docs/errors (OpenAI's shape). 498 is Groq's "flex tier
capacity exceeded".
"""

from __future__ import annotations

from typing import Any

from byok_tasks import classify
from byok_tasks.testing.provider_server import ProviderServer, closed_port_url, json_reply, stall
from tests.support.clients import STALL, STALL_TIMEOUT, chat, groq_chat, groq_client, openai_client_for_host, raised_by
from tests.support.fixtures import loopback_only_fixture, provider_server_fixture, server_fixture  # noqa: F401


def groq_failure(server: ProviderServer, status: int, error: dict[str, Any]):  # type: ignore[no-untyped-def]
    server.reply(json_reply(status, {"error": error}))
    failure = classify(raised_by(groq_chat(groq_client(server.url))))
    assert failure is not None
    assert failure.provider == "groq"
    return failure


def test_invalid_api_key_is_invalid_key(server: ProviderServer) -> None:
    # Body: https://console.groq.com/docs/errors (401 example); code as in Groq's OpenAI-shaped bodies.
    failure = groq_failure(
        server, 401, {"message": "Invalid API Key", "type": "invalid_request_error", "code": "invalid_api_key"}
    )
    assert (failure.reason, failure.code) == ("invalid_key", "invalid_api_key")


def test_tokens_per_minute_limit_is_rate_limit(server: ProviderServer) -> None:
    # Body: https://github.com/danielmiessler/Fabric/issues/364
    failure = groq_failure(
        server,
        429,
        {
            "message": "Rate limit reached for model `llama3-70b-8192` in organization "
            "`org_01hrsvc1b8ey0anvbgha0xckf2` "
            "on tokens per minute (TPM): Limit 7000, Used 0, Requested ~12903. Please try again in 50.597142857s.",
            "type": "tokens",
            "code": "rate_limit_exceeded",
        },
    )
    assert (failure.reason, failure.retryable) == ("rate_limit", True)


def test_groq_tokens_per_day_limit_is_quota(server: ProviderServer) -> None:
    # Message: https://github.com/continuedev/continue/issues/10920 — same code as the per-minute limit.
    failure = groq_failure(
        server,
        429,
        {
            "message": "Rate limit reached for model `llama-3.3-70b-versatile` in organization "
            "`org_01kjh7p9n8f1qs6nz2bz77vy6b` service tier `on_demand` on tokens per day (TPD): Limit 100000, "
            "Used 97050, Requested 3619. Please try again in 9m38.016s.",
            "type": "tokens",
            "code": "rate_limit_exceeded",
        },
    )
    assert (failure.reason, failure.retryable) == ("quota", False)


def test_request_too_large_413_is_context_length(server: ProviderServer) -> None:
    # Body: https://github.com/HunorLaczko/ha-groq-cloud-api/issues/27
    failure = groq_failure(
        server,
        413,
        {
            "message": "Request too large for model llama-3.1-8b-instant in organization org_xxxxxxx service "
            "tier on_demand on tokens per minute (TPM): Limit 6000, Requested 12328, please reduce your message "
            "size and try again.",
            "type": "tokens",
            "code": "rate_limit_exceeded",
        },
    )
    assert failure.reason == "context_length"


def test_context_length_exceeded_is_context_length(server: ProviderServer) -> None:
    # Groq uses OpenAI's code (https://console.groq.com/docs/openai); message as in
    # https://github.com/THUDM/LongBench/issues/104.
    failure = groq_failure(
        server,
        400,
        {
            "message": "Please reduce the length of the messages or completion.",
            "type": "invalid_request_error",
            "param": "messages",
            "code": "context_length_exceeded",
        },
    )
    assert failure.reason == "context_length"


def test_unknown_model_is_model_not_found(server: ProviderServer) -> None:
    # Model unavailable (https://kerlig.com/help/groq/troubleshooting); OpenAI-shaped body as in
    # https://github.com/shobrook/wut/issues/14.
    failure = groq_failure(
        server,
        404,
        {
            "message": "The model `llama-9` does not exist or you do not have access to it.",
            "type": "invalid_request_error",
            "code": "model_not_found",
        },
    )
    assert failure.reason == "model_not_found"


def test_restricted_organization_is_permission(server: ProviderServer) -> None:
    # Body: https://github.com/songquanpeng/one-api/issues/1764 — a 400 that is about the account.
    failure = groq_failure(
        server,
        400,
        {
            "message": "Organization has been restricted. "
            "Please reach out to support if you believe this was in error.",
            "type": "invalid_request_error",
            "param": "",
            "code": "organization_restricted",
        },
    )
    assert failure.reason == "permission"


def test_flex_capacity_exceeded_498_is_overloaded(server: ProviderServer) -> None:
    # 498 capacity_exceeded: https://console.groq.com/docs/flex-processing; message reconstructed.
    failure = groq_failure(
        server,
        498,
        {"message": "Flex tier capacity exceeded", "type": "capacity_exceeded", "code": "capacity_exceeded"},
    )
    assert (failure.reason, failure.retryable) == ("overloaded", True)


def test_500_is_server_error(server: ProviderServer) -> None:
    # 500 Internal Server Error: https://console.groq.com/docs/errors; message reconstructed.
    failure = groq_failure(server, 500, {"message": "Internal Server Error", "type": "internal_server_error"})
    assert failure.reason == "server_error"


def test_openai_compatible_endpoint_is_groq_by_host(server: ProviderServer) -> None:
    # Same invalid-key body, through the openai SDK at https://api.groq.com/openai/v1.
    server.reply(
        json_reply(
            401, {"error": {"message": "Invalid API Key", "type": "invalid_request_error", "code": "invalid_api_key"}}
        )
    )
    failure = classify(raised_by(chat(openai_client_for_host(server, "https://api.groq.com/openai/v1"))))
    assert failure is not None and (failure.provider, failure.reason) == ("groq", "invalid_key")


def test_timeout_is_timeout(server: ProviderServer) -> None:
    server.reply(stall(STALL))
    failure = classify(raised_by(groq_chat(groq_client(server.url, timeout=STALL_TIMEOUT))))
    assert failure is not None and (failure.provider, failure.reason) == ("groq", "timeout")


def test_refused_connection_is_connection() -> None:
    failure = classify(raised_by(groq_chat(groq_client(closed_port_url()))))
    assert failure is not None and (failure.provider, failure.reason) == ("groq", "connection")
