"""Mistral, through the mistralai SDK (on httpx2), which keeps the body as text.

Body shape: https://docs.mistral.ai/resources/error-glossary
"""

from __future__ import annotations

from byok_tasks import classify
from byok_tasks.testing.provider_server import ProviderServer, hang_up, json_reply, stall
from tests.support.clients import STALL, STALL_TIMEOUT, mistral_chat, mistral_client, raised_by
from tests.support.fixtures import loopback_only_fixture, provider_server_fixture, server_fixture  # noqa: F401


def mistral_failure(server: ProviderServer, status: int, body: object):  # type: ignore[no-untyped-def]
    server.reply(json_reply(status, body))
    failure = classify(raised_by(mistral_chat(mistral_client(server))))
    assert failure is not None
    assert failure.provider == "mistral"
    return failure


def test_unauthorized_is_invalid_key(server: ProviderServer) -> None:
    # Body: https://github.com/cline/cline/issues/1734
    failure = mistral_failure(
        server, 401, {"message": "Unauthorized", "request_id": "c61f2f15feca71626a990e3740f99245"}
    )
    assert failure.reason == "invalid_key"


def test_rate_limited_is_rate_limit(server: ProviderServer) -> None:
    # Body: https://github.com/cline/cline/issues/9085
    failure = mistral_failure(
        server,
        429,
        {"object": "error", "message": "Rate limit exceeded", "type": "rate_limited", "param": None, "code": "1300"},
    )
    assert (failure.reason, failure.code, failure.retryable) == ("rate_limit", "1300", True)


def test_invalid_model_is_model_not_found(server: ProviderServer) -> None:
    # Body: https://github.com/tmc/langchaingo/issues/1233 (Mistral answers it with 400).
    failure = mistral_failure(
        server,
        400,
        {
            "object": "error",
            "message": "Invalid model: mistral-9",
            "type": "invalid_model",
            "param": None,
            "code": "1500",
        },
    )
    assert failure.reason == "model_not_found"


def test_prompt_too_large_for_model_is_context_length(server: ProviderServer) -> None:
    # Message: https://portkey.ai/error-library/context-length-exceeded-error-13710000; shape from the error glossary.
    failure = mistral_failure(
        server,
        400,
        {
            "object": "error",
            "message": "Prompt contains 66385 tokens, too large for model with 32768 maximum context length",
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        },
    )
    assert failure.reason == "context_length"


def test_service_tier_capacity_exceeded_is_overloaded(server: ProviderServer) -> None:
    # Body: https://github.com/continuedev/continue/issues/6185
    failure = mistral_failure(
        server,
        429,
        {
            "object": "error",
            "message": "Service tier capacity exceeded for this model.",
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        },
    )
    assert (failure.reason, failure.retryable) == ("overloaded", True)


def test_payment_required_402_is_quota(server: ProviderServer) -> None:
    # 402 "A billing condition on your Organization blocks the request": https://docs.mistral.ai/resources/error-glossary;
    # message reconstructed.
    failure = mistral_failure(
        server,
        402,
        {
            "object": "error",
            "message": "Payment required",
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        },
    )
    assert failure.reason == "quota"


def test_500_is_server_error(server: ProviderServer) -> None:
    # Type "server_error": https://docs.mistral.ai/resources/error-glossary; message reconstructed.
    failure = mistral_failure(
        server,
        500,
        {"object": "error", "message": "Internal server error", "type": "server_error", "param": None, "code": None},
    )
    assert failure.reason == "server_error"


def test_timeout_is_timeout(server: ProviderServer) -> None:
    server.reply(stall(STALL))
    failure = classify(raised_by(mistral_chat(mistral_client(server, timeout=STALL_TIMEOUT))))
    assert failure is not None and (failure.provider, failure.reason) == ("mistral", "timeout")


def test_dropped_connection_is_connection(server: ProviderServer) -> None:
    server.reply(hang_up())
    failure = classify(raised_by(mistral_chat(mistral_client(server))))
    assert failure is not None and (failure.provider, failure.reason) == ("mistral", "connection")
