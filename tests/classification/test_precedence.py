"""Area 6: which field wins. A structured code beats a status; a 4xx status beats a generic body type such as
``server_error``; text is read only when nothing structured says more; a 200 takes its reason from the event."""

from __future__ import annotations

import pytest

from byok_tasks.testing.provider_server import ProviderServer, json_reply
from tests.classification._harness import Case, check, select, stream_reply
from tests.support.fixtures import loopback_only_fixture, provider_server_fixture, server_fixture  # noqa: F401


def openai_error(message: str, code: str | None, kind: str | None) -> dict[str, object]:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


CASES = [
    Case(
        "4xx-beats-type-server-error",
        "openai_chat",
        json_reply(
            400, openai_error("Invalid schema for function 'lookup': 'object' is not valid.", None, "server_error")
        ),
        ("bad_request", "openai", "platform"),
        "https://platform.openai.com/docs/guides/error-codes (a 400 typed server_error; body reconstructed in that "
        "shape)",
    ),
    Case(
        "404-beats-type-server-error",
        "openai_chat",
        json_reply(404, openai_error("The model `o1-pro` does not exist.", None, "server_error")),
        ("model_not_found", "openai", "platform"),
        "https://platform.openai.com/docs/guides/error-codes (body reconstructed in that shape)",
    ),
    Case(
        "429-with-type-server-error-stays-rate-limit",
        "openai_chat",
        json_reply(429, openai_error("Too many requests, please slow down.", None, "server_error")),
        ("rate_limit", "openai", "platform"),
        "https://platform.openai.com/docs/guides/error-codes (body reconstructed in that shape)",
    ),
    Case(
        "code-beats-status-quota-on-429",
        "openai_chat",
        json_reply(429, openai_error("You exceeded your current quota.", "insufficient_quota", "insufficient_quota")),
        ("quota", "openai", "byok"),
        "https://github.com/chatanywhere/GPT_API_free/issues/229",
        byok=("openai",),
    ),
    Case(
        "code-beats-status-permission-on-403",
        "openai_chat",
        json_reply(
            403,
            openai_error(
                "Country, region, or territory not supported",
                "unsupported_country_region_territory",
                "request_forbidden",
            ),
        ),
        ("permission", "openai", "platform"),
        "https://platform.openai.com/docs/guides/error-codes (body reconstructed in that shape)",
    ),
    Case(
        "code-beats-text-content-filter",
        "openai_chat",
        json_reply(
            400,
            {
                "error": {
                    "message": "The response was filtered due to the prompt triggering Azure OpenAI's content "
                    "management policy. This model's maximum context length is not the issue.",
                    "type": None,
                    "param": "prompt",
                    "code": "content_filter",
                }
            },
        ),
        ("content_filter", "azure_openai", "platform"),
        "https://learn.microsoft.com/azure/ai-services/openai/concepts/content-filter",
        base_url="https://contoso.openai.azure.com/openai/v1/",
    ),
    Case(
        "specific-code-beats-5xx-status",
        "openai_chat",
        json_reply(
            503,
            {
                "error": {
                    "message": "Engine is currently overloaded, please try again later",
                    "type": "server_error",
                    "code": "engine_overloaded",
                }
            },
        ),
        ("overloaded", "openai", "platform"),
        "https://platform.openai.com/docs/guides/error-codes (body reconstructed in that shape)",
    ),
    Case(
        "503-status-beats-generic-type",
        "groq_chat",
        json_reply(503, {"error": {"message": "Service Unavailable", "type": "internal_server_error"}}),
        ("overloaded", "groq", "platform"),
        "https://console.groq.com/docs/errors",
    ),
    Case(
        "text-as-last-resort-generic-type",
        "anthropic_messages",
        json_reply(
            400,
            {
                "type": "error",
                "error": {
                    "type": "invalid_request_error",
                    "message": "prompt is too long: 200001 tokens > 200000 maximum",
                },
            },
        ),
        ("context_length", "anthropic", "platform"),
        "https://github.com/sojohnnysaid/project-guide/issues/2",
    ),
    Case(
        "stream-200-reason-from-event",
        "openai_chat_stream",
        stream_reply(
            (
                None,
                {
                    "error": {
                        "message": "You exceeded your current quota.",
                        "type": "insufficient_quota",
                        "code": "insufficient_quota",
                    }
                },
            )
        ),
        ("quota", "openai", "platform"),
        "https://platform.openai.com/docs/guides/error-codes (a 429 body relayed in a stream)",
    ),
    Case(
        "long-retry-after-is-quota",
        "openai_chat",
        json_reply(
            429,
            {
                "error": {
                    "code": "429",
                    "message": "Requests to the Embeddings_Create Operation have exceeded call rate limit of "
                    "your current pricing tier.",
                }
            },
            headers={"retry-after": "86400"},
        ),
        ("quota", "azure_openai", "platform"),
        "https://learn.microsoft.com/azure/ai-services/openai/quotas-limits (free tier: a day)",
        base_url="https://contoso.openai.azure.com/openai/v1/",
    ),
]


@pytest.mark.parametrize("case", select(CASES))
def test_precedence(server: ProviderServer, case: Case) -> None:
    check(server, case)
