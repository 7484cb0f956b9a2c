"""OpenAI, through the openai SDK against the loopback provider."""

from __future__ import annotations

from byok_tasks import classify
from byok_tasks.testing.provider_server import ProviderServer, closed_port_url, json_reply, raw_reply, stall
from tests.support.clients import STALL, STALL_TIMEOUT, chat, openai_client, openai_client_for_host, raised_by
from tests.support.fixtures import loopback_only_fixture, provider_server_fixture, server_fixture  # noqa: F401

OPENAI_API = "https://api.openai.com/v1"


def openai_failure(server: ProviderServer, status: int, error: object, **headers: str):  # type: ignore[no-untyped-def]
    server.reply(json_reply(status, {"error": error}, headers=headers))
    failure = classify(raised_by(chat(openai_client_for_host(server, OPENAI_API))))
    assert failure is not None
    assert failure.provider == "openai"
    return failure


def test_incorrect_api_key_is_invalid_key_and_the_masked_key_is_redacted(server: ProviderServer) -> None:
    # Body: https://github.com/IIC2440/Syllabus-2025-1/issues/13 (masked echo keeps 12 characters).
    failure = openai_failure(
        server,
        401,
        {
            "message": "Incorrect API key provided: sk-proj-********************************************SJh4. "
            "You can find your API key at https://platform.openai.com/account/api-keys.",
            "type": "invalid_request_error",
            "param": None,
            "code": "invalid_api_key",
        },
    )
    assert (failure.reason, failure.status, failure.code, failure.retryable) == (
        "invalid_key",
        401,
        "invalid_api_key",
        False,
    )
    assert "SJh4" not in failure.message and "[REDACTED]" in failure.message


def test_insufficient_quota_429_is_quota_not_rate_limit(server: ProviderServer) -> None:
    # Body: https://github.com/chatanywhere/GPT_API_free/issues/229
    failure = openai_failure(
        server,
        429,
        {
            "message": "You exceeded your current quota, please check your plan and billing details. For more "
            "information on this error, read the docs: https://platform.openai.com/docs/guides/error-codes/api-errors.",
            "type": "insufficient_quota",
            "param": None,
            "code": "insufficient_quota",
        },
    )
    assert (failure.reason, failure.retryable) == ("quota", False)


def test_tokens_per_minute_limit_is_rate_limit_with_retry_after_ms(server: ProviderServer) -> None:
    # Body: https://github.com/semanser/codel/issues/72; retry-after-ms: the header the openai SDK honours.
    failure = openai_failure(
        server,
        429,
        {
            "message": "Rate limit reached for gpt-4o in organization org-XXXX on tokens per min (TPM): Limit 30000, "
            "Used 14567, Requested 24754. Please try again in 18.642s.",
            "type": "tokens",
            "param": None,
            "code": "rate_limit_exceeded",
        },
        **{"retry-after-ms": "18642"},
    )
    assert (failure.reason, failure.retry_after, failure.retryable) == ("rate_limit", 18.642, True)


def test_requests_per_day_limit_is_quota(server: ProviderServer) -> None:
    # Same code as the per-minute limit; body shape from https://github.com/semanser/codel/issues/72,
    # the daily window ("requests per day (RPD)") as in https://github.com/continuedev/continue/issues/10920.
    failure = openai_failure(
        server,
        429,
        {
            "message": "Rate limit reached for gpt-4o in organization org-XXXX on requests per day (RPD): "
            "Limit 10000, Used 10000, Requested 1.",
            "type": "requests",
            "param": None,
            "code": "rate_limit_exceeded",
        },
    )
    assert failure.reason == "quota"


def test_request_larger_than_the_per_minute_allowance_is_context_length(server: ProviderServer) -> None:
    # Body: https://github.com/DrShushen/climb/issues/13 — waiting never lets this request through.
    failure = openai_failure(
        server,
        429,
        {
            "message": "Request too large for gpt-4o in organization org-XXXX on tokens per min (TPM): Limit 30000, "
            "Requested 30601. The input or output tokens must be reduced in order to run successfully.",
            "type": "tokens",
            "param": None,
            "code": "rate_limit_exceeded",
        },
    )
    assert (failure.reason, failure.retryable) == ("context_length", False)


def test_unknown_model_is_model_not_found(server: ProviderServer) -> None:
    # Body: https://github.com/shobrook/wut/issues/14
    failure = openai_failure(
        server,
        404,
        {
            "message": "The model `gpt-4o` does not exist or you do not have access to it.",
            "type": "invalid_request_error",
            "param": None,
            "code": "model_not_found",
        },
    )
    assert failure.reason == "model_not_found"


def test_context_length_exceeded_is_context_length(server: ProviderServer) -> None:
    # Body: https://github.com/crewAIInc/crewAI-examples/issues/121
    failure = openai_failure(
        server,
        400,
        {
            "message": "This model's maximum context length is 8192 tokens. However, your messages resulted in 8227 "
            "tokens. Please reduce the length of the messages.",
            "type": "invalid_request_error",
            "param": "messages",
            "code": "context_length_exceeded",
        },
    )
    assert failure.reason == "context_length"


def test_image_prompt_rejected_by_the_safety_system_is_content_filter(server: ProviderServer) -> None:
    # Body: https://github.com/songquanpeng/one-api/issues/737
    failure = openai_failure(
        server,
        400,
        {
            "code": "content_policy_violation",
            "message": "Your request was rejected as a result of our safety system. Your prompt may contain text "
            "that is not allowed by our safety system.",
            "param": None,
            "type": "invalid_request_error",
        },
    )
    assert (failure.reason, failure.retryable) == ("content_filter", False)


def test_prompt_flagged_by_the_usage_policy_is_content_filter(server: ProviderServer) -> None:
    # Body: https://github.com/BeehiveInnovations/pal-mcp-server/issues/178
    failure = openai_failure(
        server,
        400,
        {
            "message": "Invalid prompt: your prompt was flagged as potentially violating our usage policy. Please try "
            "again with a different prompt: https://platform.openai.com/docs/guides/reasoning#advice-on-prompting",
            "type": "invalid_request_error",
            "param": None,
            "code": "invalid_prompt",
        },
    )
    assert failure.reason == "content_filter"


def test_unsupported_country_is_permission(server: ProviderServer) -> None:
    # Code from https://platform.openai.com/docs/guides/error-codes
    # ("403 - Country, region, or territory not supported").
    failure = openai_failure(
        server,
        403,
        {
            "message": "Country, region, or territory not supported",
            "type": "request_forbidden",
            "param": None,
            "code": "unsupported_country_region_territory",
        },
    )
    assert failure.reason == "permission"


def test_invalid_parameter_is_bad_request(server: ProviderServer) -> None:
    # Body: https://github.com/Mobile-Artificial-Intelligence/maid/issues/672 (shape shared by OpenAI-style APIs).
    failure = openai_failure(
        server,
        400,
        {
            "message": "Invalid value for 'temperature'.",
            "type": "invalid_request_error",
            "param": "temperature",
            "code": None,
        },
    )
    assert (failure.reason, failure.code) == ("bad_request", "invalid_request_error")


def test_server_error_500_is_server_error_and_retryable(server: ProviderServer) -> None:
    # https://help.openai.com/en/articles/6891839-api-error-code-guidance ("500 - The server had an error").
    failure = openai_failure(
        server,
        500,
        {
            "message": "The server had an error while processing your request. Sorry about that!",
            "type": "server_error",
            "param": None,
            "code": None,
        },
    )
    assert (failure.reason, failure.retryable) == ("server_error", True)


def test_503_engine_overloaded_is_overloaded(server: ProviderServer) -> None:
    # https://help.openai.com/en/articles/6891839-api-error-code-guidance ("Our servers are experiencing high traffic").
    server.reply(raw_reply(503, "The engine is currently overloaded, please try again later"))
    failure = classify(raised_by(chat(openai_client_for_host(server, OPENAI_API))))
    assert failure is not None and (failure.provider, failure.reason, failure.retryable) == (
        "openai",
        "overloaded",
        True,
    )


def test_request_id_comes_from_the_response_headers(server: ProviderServer) -> None:
    failure = openai_failure(
        server,
        500,
        {"message": "boom", "type": "server_error", "param": None, "code": None},
        **{"x-request-id": "req_abc"},
    )
    assert failure.request_id == "req_abc"


def test_timeout_is_timeout(server: ProviderServer) -> None:
    server.reply(stall(STALL))
    failure = classify(raised_by(chat(openai_client(server.url + "/v1", timeout=STALL_TIMEOUT))))
    assert failure is not None and (failure.provider, failure.reason, failure.retryable) == ("openai", "timeout", True)


def test_refused_connection_is_connection() -> None:
    failure = classify(raised_by(chat(openai_client(closed_port_url() + "/v1"))))
    assert failure is not None and (failure.provider, failure.reason) == ("openai", "connection")
