"""Anthropic, through the anthropic SDK against the loopback provider.

Error types: https://docs.anthropic.com/en/api/errors. Anthropic answers an exhausted
credit balance and a reached spend limit with a plain 400 ``invalid_request_error``.
"""

from __future__ import annotations

from byok_tasks import classify
from byok_tasks.testing.provider_server import ProviderServer, closed_port_url, json_reply, stall
from tests.support.clients import STALL, STALL_TIMEOUT, anthropic_client, anthropic_message, raised_by
from tests.support.fixtures import loopback_only_fixture, provider_server_fixture, server_fixture  # noqa: F401


def anthropic_failure(server: ProviderServer, status: int, error: dict[str, object], **headers: str):  # type: ignore[no-untyped-def]
    server.reply(json_reply(status, {"type": "error", "error": error, "request_id": "req_011CZ"}, headers=headers))
    failure = classify(raised_by(anthropic_message(anthropic_client(server.url))))
    assert failure is not None
    assert failure.provider == "anthropic"
    return failure


def test_invalid_x_api_key_is_invalid_key(server: ProviderServer) -> None:
    # Body: https://github.com/eyaltoledano/claude-task-master/issues/222
    failure = anthropic_failure(server, 401, {"type": "authentication_error", "message": "invalid x-api-key"})
    assert (failure.reason, failure.code) == ("invalid_key", "authentication_error")


def test_anthropic_credit_balance_too_low_is_quota(server: ProviderServer) -> None:
    # Body: https://github.com/anthropics/claude-quickstarts/issues/83
    failure = anthropic_failure(
        server,
        400,
        {
            "type": "invalid_request_error",
            "message": "Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to "
            "upgrade or purchase credits.",
        },
    )
    assert (failure.reason, failure.status, failure.code, failure.retryable) == (
        "quota",
        400,
        "invalid_request_error",
        False,
    )


def test_reached_api_usage_limit_is_quota(server: ProviderServer) -> None:
    # Body: https://github.com/anthropics/claude-code/issues/38035
    failure = anthropic_failure(
        server,
        400,
        {
            "type": "invalid_request_error",
            "message": "You have reached your specified API usage limits. "
            "You will regain access on 2026-04-01 at 00:00 UTC.",
        },
    )
    assert failure.reason == "quota"


def test_billing_error_402_is_quota(server: ProviderServer) -> None:
    # Type "billing_error" (402): https://docs.anthropic.com/en/api/errors; message reconstructed.
    failure = anthropic_failure(server, 402, {"type": "billing_error", "message": "Your account has a billing issue."})
    assert failure.reason == "quota"


def test_enforced_spend_limit_error_code_is_quota(server: ProviderServer) -> None:
    # error.details.error_code as the anthropic SDK models it
    # (anthropic/types/shared/enforced_spend_limit_reached_error_details.py); body reconstructed from the SDK.
    failure = anthropic_failure(
        server,
        429,
        {
            "type": "rate_limit_error",
            "message": "Your organization has reached its monthly API usage threshold.",
            "details": {"error_code": "enforced_spend_limit_reached"},
        },
    )
    assert (failure.reason, failure.code) == ("quota", "enforced_spend_limit_reached")


def test_permission_error_is_permission(server: ProviderServer) -> None:
    # Type "permission_error" (403): https://docs.anthropic.com/en/api/errors
    failure = anthropic_failure(
        server,
        403,
        {"type": "permission_error", "message": "Your API key does not have permission to use the specified resource."},
    )
    assert failure.reason == "permission"


def test_unknown_model_is_model_not_found(server: ProviderServer) -> None:
    # Type "not_found_error" (404): https://docs.anthropic.com/en/api/errors
    failure = anthropic_failure(server, 404, {"type": "not_found_error", "message": "model: claude-sonnet-9"})
    assert failure.reason == "model_not_found"


def test_prompt_too_long_is_context_length(server: ProviderServer) -> None:
    # Body: https://github.com/sojohnnysaid/project-guide/issues/2
    failure = anthropic_failure(
        server, 400, {"type": "invalid_request_error", "message": "prompt is too long: 208656 tokens > 200000 maximum"}
    )
    assert failure.reason == "context_length"


def test_output_blocked_by_content_filtering_is_content_filter(server: ProviderServer) -> None:
    # Body: https://github.com/anthropics/claude-code/issues/37547
    failure = anthropic_failure(
        server, 400, {"type": "invalid_request_error", "message": "Output blocked by content filtering policy"}
    )
    assert failure.reason == "content_filter"


def test_max_tokens_above_model_limit_is_bad_request(server: ProviderServer) -> None:
    # Body: https://github.com/ChatGPTNextWeb/NextChat/issues/4964
    failure = anthropic_failure(
        server,
        400,
        {
            "type": "invalid_request_error",
            "message": "max_tokens: 10000 > 4096, which is the maximum allowed number of output tokens for "
            "claude-3-5-sonnet-20240620",
        },
    )
    assert failure.reason == "bad_request"


def test_rate_limit_error_is_rate_limit_with_retry_after(server: ProviderServer) -> None:
    # Body: https://github.com/anthropics/claude-code/issues/55789; retry-after: https://docs.anthropic.com/en/api/rate-limits
    failure = anthropic_failure(
        server,
        429,
        {
            "type": "rate_limit_error",
            "message": "This request would exceed your account's rate limit. Please try again later.",
        },
        **{"retry-after": "17"},
    )
    assert (failure.reason, failure.retry_after, failure.retryable) == ("rate_limit", 17.0, True)


def test_overloaded_529_is_overloaded(server: ProviderServer) -> None:
    # Body: https://docs.llmgateway.io/troubleshooting/anthropic-529-overloaded
    failure = anthropic_failure(server, 529, {"type": "overloaded_error", "message": "Overloaded"})
    assert (failure.reason, failure.retryable) == ("overloaded", True)


def test_api_error_500_is_server_error(server: ProviderServer) -> None:
    # Type "api_error" (500): https://docs.anthropic.com/en/api/errors
    failure = anthropic_failure(server, 500, {"type": "api_error", "message": "Internal server error"})
    assert failure.reason == "server_error"


def test_request_id_comes_from_the_request_id_header(server: ProviderServer) -> None:
    failure = anthropic_failure(
        server, 500, {"type": "api_error", "message": "Internal server error"}, **{"request-id": "req_018EeWyX"}
    )
    assert failure.request_id == "req_018EeWyX"


def test_timeout_is_timeout(server: ProviderServer) -> None:
    server.reply(stall(STALL))
    failure = classify(raised_by(anthropic_message(anthropic_client(server.url, timeout=STALL_TIMEOUT))))
    assert failure is not None and (failure.provider, failure.reason) == ("anthropic", "timeout")


def test_refused_connection_is_connection() -> None:
    failure = classify(raised_by(anthropic_message(anthropic_client(closed_port_url()))))
    assert failure is not None and (failure.provider, failure.reason) == ("anthropic", "connection")
