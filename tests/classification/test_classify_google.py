"""Google Gemini API and Vertex AI, through google-genai against the loopback provider.

Bodies are google.rpc.Status JSON (https://cloud.google.com/apis/design/errors); the
details that decide are ErrorInfo.reason, QuotaFailure quota ids and RetryInfo.
"""

from __future__ import annotations

from typing import Any

from byok_tasks import classify
from byok_tasks.testing.provider_server import ProviderServer, hang_up, json_reply, stall
from tests.support.clients import STALL, STALL_TIMEOUT, gemini_client, gemini_generate, raised_by
from tests.support.fixtures import loopback_only_fixture, provider_server_fixture, server_fixture  # noqa: F401

HELP = {
    "@type": "type.googleapis.com/google.rpc.Help",
    "links": [
        {
            "description": "Learn more about Gemini API quotas",
            "url": "https://ai.google.dev/gemini-api/docs/rate-limits",
        }
    ],
}


def quota_violation(
    quota_id: str, metric: str = "generativelanguage.googleapis.com/generate_content_free_tier_requests"
) -> dict[str, Any]:
    return {
        "quotaMetric": metric,
        "quotaId": quota_id,
        "quotaDimensions": {"location": "global", "model": "gemini-2.5-flash"},
    }


def google_failure(server: ProviderServer, status: int, error: dict[str, Any]):  # type: ignore[no-untyped-def]
    server.reply(json_reply(status, {"error": {"code": status, **error}}))
    failure = classify(raised_by(gemini_generate(gemini_client(server))))
    assert failure is not None
    assert failure.provider == "google"
    return failure


def test_gemini_invalid_api_key_400_is_invalid_key(server: ProviderServer) -> None:
    # Body: https://github.com/cequence-io/openai-scala-client/issues/109 — a bad key is a 400, not a 401.
    failure = google_failure(
        server,
        400,
        {
            "message": "API key not valid. Please pass a valid API key.",
            "status": "INVALID_ARGUMENT",
            "details": [
                {
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": "API_KEY_INVALID",
                    "domain": "googleapis.com",
                    "metadata": {"service": "generativelanguage.googleapis.com"},
                },
                {
                    "@type": "type.googleapis.com/google.rpc.LocalizedMessage",
                    "locale": "en-US",
                    "message": "API key not valid. Please pass a valid API key.",
                },
            ],
        },
    )
    assert (failure.reason, failure.status, failure.code) == ("invalid_key", 400, "API_KEY_INVALID")


def test_suspended_key_is_invalid_key_and_the_echoed_key_is_redacted(server: ProviderServer) -> None:
    # Body: https://github.com/google/generative-ai-docs/issues/356 — Gemini echoes a suspended key whole.
    key = "AIzaSyAhTarnL1PaQn_yu_uVf0gia9wUyJx8RSI"
    failure = google_failure(
        server,
        403,
        {
            "message": f"Permission denied: Consumer 'api_key:{key}' has been suspended.",
            "status": "PERMISSION_DENIED",
            "details": [
                {
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": "CONSUMER_SUSPENDED",
                    "domain": "googleapis.com",
                    "metadata": {"service": "generativelanguage.googleapis.com", "consumer": "projects/578829824020"},
                }
            ],
        },
    )
    assert (failure.reason, failure.code) == ("invalid_key", "CONSUMER_SUSPENDED")
    assert key not in failure.message and "[REDACTED]" in failure.message


def test_key_reported_as_leaked_is_invalid_key(server: ProviderServer) -> None:
    # Body: https://github.com/continuedev/continue/issues/10513 — no details, only the message says it.
    failure = google_failure(
        server,
        403,
        {"message": "Your API key was reported as leaked. Please use another API key.", "status": "PERMISSION_DENIED"},
    )
    assert failure.reason == "invalid_key"


def test_per_minute_quota_429_is_rate_limit_with_retry_info(server: ProviderServer) -> None:
    # Body: https://github.com/RooCodeInc/Roo-Code/issues/3883 — "exceeded your current quota", yet per minute.
    failure = google_failure(
        server,
        429,
        {
            "message": "You exceeded your current quota, please check your plan and billing details. For more "
            "information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits.",
            "status": "RESOURCE_EXHAUSTED",
            "details": [
                {
                    "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                    "violations": [
                        quota_violation(
                            "GenerateContentInputTokensPerModelPerMinute-FreeTier",
                            "generativelanguage.googleapis.com/generate_content_free_tier_input_token_count",
                        )
                    ],
                },
                HELP,
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "26s"},
            ],
        },
    )
    assert (failure.reason, failure.retry_after, failure.retryable, failure.code) == (
        "rate_limit",
        26.0,
        True,
        "RESOURCE_EXHAUSTED",
    )


def test_per_day_quota_429_is_quota(server: ProviderServer) -> None:
    # Body: https://github.com/diegosouzapw/OmniRoute/issues/9504 — a daily quota, with a RetryInfo all the same.
    failure = google_failure(
        server,
        429,
        {
            "message": "You exceeded your current quota, please check your plan and billing details.\n* Quota exceeded "
            "for metric: generativelanguage.googleapis.com/generate_content_free_tier_requests, limit: 20, model: "
            "gemini-2.5-flash\nPlease retry in 36.429760048s.",
            "status": "RESOURCE_EXHAUSTED",
            "details": [
                {
                    "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                    "violations": [quota_violation("GenerateRequestsPerDayPerProjectPerModel-FreeTier")],
                },
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "36s"},
            ],
        },
    )
    assert (failure.reason, failure.retryable, failure.retry_after) == ("quota", False, 36.0)


def test_daily_and_per_minute_quotas_violated_together_is_quota(server: ProviderServer) -> None:
    # Body: https://github.com/google-gemini/gemini-cli/issues/8437 — three violations, one of them daily.
    failure = google_failure(
        server,
        429,
        {
            "message": "You exceeded your current quota, please check your plan and billing details.",
            "status": "RESOURCE_EXHAUSTED",
            "details": [
                {
                    "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                    "violations": [
                        quota_violation("GenerateContentInputTokensPerModelPerMinute-FreeTier"),
                        quota_violation("GenerateRequestsPerMinutePerProjectPerModel-FreeTier"),
                        quota_violation("GenerateRequestsPerDayPerProjectPerModel-FreeTier"),
                    ],
                },
                HELP,
            ],
        },
    )
    assert failure.reason == "quota"


def test_429_without_details_is_rate_limit(server: ProviderServer) -> None:
    # Body: https://github.com/googleapis/python-genai/issues/2065 — nothing says which window was hit.
    failure = google_failure(
        server, 429, {"message": "Resource has been exhausted (e.g. check quota).", "status": "RESOURCE_EXHAUSTED"}
    )
    assert failure.reason == "rate_limit"


def test_per_day_limit_named_only_in_error_info_message_is_quota(server: ProviderServer) -> None:
    # Body: https://github.com/google-gemini/gemini-cli/issues/10513 — ErrorInfo RATE_LIMIT_EXCEEDED, daily limit.
    failure = google_failure(
        server,
        429,
        {
            "message": "Quota exceeded for quota metric 'Gemini 2.5 Pro Requests' and limit 'Gemini 2.5 Pro Requests "
            "per day per user per tier' of service 'cloudcode-pa.googleapis.com' for consumer "
            "'project_number:681255809395'.",
            "status": "RESOURCE_EXHAUSTED",
            "details": [
                {
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": "RATE_LIMIT_EXCEEDED",
                    "domain": "googleapis.com",
                    "metadata": {"quota_metric": "cloudcode-pa.googleapis.com/gemini_2_5_pro_requests"},
                }
            ],
        },
    )
    assert (failure.reason, failure.code) == ("quota", "RATE_LIMIT_EXCEEDED")


def test_unsupported_location_is_permission(server: ProviderServer) -> None:
    # Body: https://github.com/gemini-api-php/client/issues/32
    failure = google_failure(
        server, 400, {"message": "User location is not supported for the API use.", "status": "FAILED_PRECONDITION"}
    )
    assert failure.reason == "permission"


def test_unknown_model_is_model_not_found(server: ProviderServer) -> None:
    # Body: https://github.com/wwardaww/gnome-gemini-ai/issues/21
    failure = google_failure(
        server,
        404,
        {
            "message": "models/gemini-1.0-pro is not found for API version v1beta, or is not supported for "
            "generateContent. Call ListModels to see the list of available models and their supported methods.",
            "status": "NOT_FOUND",
        },
    )
    assert failure.reason == "model_not_found"


def test_input_token_count_over_the_limit_is_context_length(server: ProviderServer) -> None:
    # Message: https://github.com/google-gemini/gemini-cli/issues/4692
    failure = google_failure(
        server,
        400,
        {
            "message": "The input token count (2845475) exceeds the maximum number of tokens allowed (1048576).",
            "status": "INVALID_ARGUMENT",
        },
    )
    assert failure.reason == "context_length"


def test_model_overloaded_503_is_overloaded(server: ProviderServer) -> None:
    # Body: https://github.com/google-gemini/cookbook/issues/425
    failure = google_failure(
        server, 503, {"message": "The model is overloaded. Please try again later.", "status": "UNAVAILABLE"}
    )
    assert (failure.reason, failure.retryable) == ("overloaded", True)


def test_internal_error_500_is_server_error(server: ProviderServer) -> None:
    # Status INTERNAL (500): https://ai.google.dev/gemini-api/docs/troubleshooting; message reconstructed.
    failure = google_failure(
        server,
        500,
        {
            "message": "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting",
            "status": "INTERNAL",
        },
    )
    assert failure.reason == "server_error"


def test_timeout_is_timeout(server: ProviderServer) -> None:
    server.reply(stall(STALL))
    failure = classify(raised_by(gemini_generate(gemini_client(server, timeout=STALL_TIMEOUT))))
    assert failure is not None and (failure.provider, failure.reason) == ("google", "timeout")


def test_dropped_connection_is_connection(server: ProviderServer) -> None:
    server.reply(hang_up())
    failure = classify(raised_by(gemini_generate(gemini_client(server))))
    assert failure is not None and (failure.provider, failure.reason) == ("google", "connection")


def test_vertex_regional_host_is_google() -> None:
    from byok_tasks.providers import by_host

    table = by_host("us-central1-aiplatform.googleapis.com")
    assert table is not None and table.name == "google"
