"""Area 1: errors after a 200. The SDK raises mid-stream with status 200 or none; the event body says why."""

from __future__ import annotations

import pytest

from byok_tasks.testing.provider_server import ProviderServer
from tests.classification._harness import (
    Case,
    bedrock_message_start,
    bedrock_stream_exception,
    check,
    select,
    stream_reply,
)
from tests.support.fixtures import loopback_only_fixture, provider_server_fixture, server_fixture  # noqa: F401

ANTHROPIC_STREAMING = "https://docs.anthropic.com/en/docs/build-with-claude/streaming#error-events"
MESSAGE_START = (
    "message_start",
    {
        "type": "message_start",
        "message": {
            "id": "msg_01",
            "type": "message",
            "role": "assistant",
            "model": "claude-haiku-4-5",
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 10, "output_tokens": 1},
        },
    },
)


def anthropic_error_event(kind: str, message: str) -> tuple[str, object]:
    return ("error", {"type": "error", "error": {"type": kind, "message": message}})


def chunk_error(error: dict[str, object], **extra: object) -> tuple[None, object]:
    return (None, {"error": error, **extra})


CASES = [
    Case(
        "anthropic-sse-overloaded",
        "anthropic_stream",
        stream_reply(MESSAGE_START, anthropic_error_event("overloaded_error", "Overloaded")),
        ("overloaded", "anthropic", "platform"),
        ANTHROPIC_STREAMING,
    ),
    Case(
        "anthropic-sse-api-error-byok",
        "anthropic_stream",
        stream_reply(MESSAGE_START, anthropic_error_event("api_error", "Internal server error")),
        ("server_error", "anthropic", "byok"),
        "https://docs.anthropic.com/en/api/errors (body reconstructed in that shape)",
        byok=("anthropic",),
    ),
    Case(
        "anthropic-sse-rate-limit-first-event",
        "anthropic_stream",
        stream_reply(
            anthropic_error_event(
                "rate_limit_error", "This request would exceed your account's rate limit. Please try again later."
            )
        ),
        ("rate_limit", "anthropic", "platform"),
        "https://docs.anthropic.com/en/api/errors",
    ),
    Case(
        "anthropic-sse-invalid-request-too-long",
        "anthropic_stream",
        stream_reply(
            anthropic_error_event("invalid_request_error", "prompt is too long: 215000 tokens > 200000 maximum")
        ),
        ("context_length", "anthropic", "platform"),
        "https://docs.anthropic.com/en/api/errors (body reconstructed in that shape)",
    ),
    Case(
        "anthropic-vertex-sse-overloaded",
        "anthropic_vertex_stream",
        stream_reply(MESSAGE_START, anthropic_error_event("overloaded_error", "Overloaded")),
        ("overloaded", "google", "byok"),
        "https://cloud.google.com/apis/design/errors (Vertex streams relay Anthropic's events; body reconstructed in "
        "that shape)",
        byok=("google",),
    ),
    Case(
        "anthropic-vertex-sse-api-error",
        "anthropic_vertex_stream",
        stream_reply(MESSAGE_START, anthropic_error_event("api_error", "Internal server error")),
        ("server_error", "google", "platform"),
        ANTHROPIC_STREAMING,
    ),
    Case(
        "openai-stream-server-error-chunk",
        "openai_chat_stream",
        stream_reply(
            chunk_error(
                {
                    "message": "The server had an error while processing your request. Sorry about that!",
                    "type": "server_error",
                    "param": None,
                    "code": None,
                }
            )
        ),
        ("server_error", "openai", "platform"),
        "https://platform.openai.com/docs/guides/error-codes (body reconstructed in that shape)",
    ),
    Case(
        "openai-stream-rate-limit-chunk",
        "openai_chat_stream",
        stream_reply(
            chunk_error(
                {
                    "message": "Rate limit reached for gpt-4o in organization org-x on tokens per min (TPM): "
                    "Limit 30000, Used 29000, Requested 2000.",
                    "type": "tokens",
                    "param": None,
                    "code": "rate_limit_exceeded",
                }
            )
        ),
        ("rate_limit", "openai", "byok"),
        "https://platform.openai.com/docs/guides/error-codes (body of a 429, sent as a stream chunk)",
        byok=("openai",),
    ),
    Case(
        "openrouter-stream-error-chunk-server-error",
        "openai_chat_stream",
        stream_reply(
            (
                None,
                {
                    "id": "cmpl-abc123",
                    "object": "chat.completion.chunk",
                    "created": 1234567890,
                    "model": "openai/gpt-4o",
                    "provider": "openai",
                    "error": {"code": "server_error", "message": "Provider disconnected unexpectedly"},
                    "choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": "error"}],
                },
            )
        ),
        ("server_error", "openrouter", "byok"),
        "https://openrouter.ai/docs/api-reference/streaming#stream-cancellation-and-errors",
        byok=("openrouter",),
        base_url="https://openrouter.ai/api/v1",
    ),
    Case(
        "openrouter-stream-error-chunk-numeric-429",
        "openai_chat_stream",
        stream_reply(chunk_error({"code": 429, "message": "Rate limit exceeded: free-models-per-min."})),
        ("rate_limit", "openrouter", "platform"),
        "https://openrouter.ai/docs/api-reference/errors (body reconstructed in that shape)",
        base_url="https://openrouter.ai/api/v1",
    ),
    Case(
        "openrouter-stream-error-chunk-502",
        "openai_chat_stream",
        stream_reply(chunk_error({"code": 502, "message": "Network connection lost."})),
        ("server_error", "openrouter", "platform"),
        "https://openrouter.ai/docs/api-reference/errors (body reconstructed in that shape)",
        base_url="https://openrouter.ai/api/v1",
    ),
    Case(
        "groq-stream-tool-use-failed",
        "groq_stream",
        stream_reply(
            chunk_error(
                {
                    "message": "Failed to call a function. Please adjust your prompt. See 'failed_generation' for "
                    "more details.",
                    "type": "invalid_request_error",
                    "code": "tool_use_failed",
                    "failed_generation": "<function=search>{}</function>",
                }
            )
        ),
        ("bad_request", "groq", "platform"),
        "https://console.groq.com/docs/errors (body reconstructed in that shape)",
    ),
    Case(
        "groq-stream-internal-error",
        "groq_stream",
        stream_reply(chunk_error({"message": "Internal Server Error", "type": "internal_server_error"})),
        ("server_error", "groq", "byok"),
        "https://console.groq.com/docs/errors",
        byok=("groq",),
    ),
    Case(
        "groq-openai-compatible-stream-capacity",
        "openai_chat_stream",
        stream_reply(
            chunk_error(
                {
                    "message": "Service Unavailable: over capacity, please try again",
                    "type": "internal_server_error",
                    "code": "service_unavailable",
                }
            )
        ),
        ("overloaded", "groq", "platform"),
        "https://console.groq.com/docs/errors (503)",
        base_url="https://api.groq.com/openai/v1",
    ),
    Case(
        "gemini-stream-unavailable",
        "gemini_stream",
        stream_reply(
            (
                None,
                {
                    "error": {
                        "code": 503,
                        "message": "The model is overloaded. Please try again later.",
                        "status": "UNAVAILABLE",
                    }
                },
            )
        ),
        ("overloaded", "google", "platform"),
        "https://cloud.google.com/apis/design/errors (body reconstructed in that shape)",
    ),
    Case(
        "gemini-stream-internal",
        "gemini_stream",
        stream_reply(
            (
                None,
                {
                    "error": {
                        "code": 500,
                        "message": "An internal error has occurred. Please retry or report in "
                        "https://developers.generativeai.google/guide/troubleshooting",
                        "status": "INTERNAL",
                    }
                },
            )
        ),
        ("server_error", "google", "byok"),
        "https://cloud.google.com/apis/design/errors (body reconstructed in that shape)",
        byok=("google",),
    ),
    Case(
        "gemini-stream-resource-exhausted",
        "gemini_stream",
        stream_reply(
            (
                None,
                {
                    "error": {
                        "code": 429,
                        "message": "Resource has been exhausted (e.g. check quota).",
                        "status": "RESOURCE_EXHAUSTED",
                    }
                },
            )
        ),
        ("rate_limit", "google", "platform"),
        "https://cloud.google.com/apis/design/errors (body reconstructed in that shape)",
    ),
    Case(
        "vertex-gemini-stream-resource-exhausted",
        "vertex_gemini_stream",
        stream_reply(
            (
                None,
                {
                    "error": {
                        "code": 429,
                        "message": "Resource exhausted. Please try again later. Please refer to "
                        "https://cloud.google.com/vertex-ai/generative-ai/docs/error-code-429 for more details.",
                        "status": "RESOURCE_EXHAUSTED",
                    }
                },
            )
        ),
        ("rate_limit", "google", "platform"),
        "https://cloud.google.com/vertex-ai/generative-ai/docs/error-code-429",
    ),
    Case(
        "bedrock-converse-stream-throttling",
        "bedrock_converse_stream",
        bedrock_stream_exception("throttlingException", "Too many tokens, please wait before trying again."),
        ("rate_limit", "bedrock", "byok"),
        "https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_ConverseStream.html",
        byok=("bedrock",),
    ),
    Case(
        "bedrock-converse-stream-validation-too-long",
        "bedrock_converse_stream",
        bedrock_stream_exception("validationException", "Input is too long for requested model."),
        ("context_length", "bedrock", "platform"),
        "https://docs.aws.amazon.com/bedrock/latest/userguide/troubleshooting-api-error-codes.html (body reconstructed "
        "in that shape)",
    ),
    Case(
        "bedrock-converse-stream-model-stream-error",
        "bedrock_converse_stream",
        bedrock_stream_exception(
            "modelStreamErrorException",
            "Model produced invalid sequence as part of ToolUse. Please refer to the model tool use troubleshooting "
            "guide.",
            before=bedrock_message_start(),
        ),
        ("server_error", "bedrock", "platform"),
        "https://docs.aws.amazon.com/bedrock/latest/userguide/troubleshooting-api-error-codes.html (body reconstructed "
        "in that shape)",
    ),
    Case(
        "bedrock-converse-stream-service-unavailable",
        "bedrock_converse_stream",
        bedrock_stream_exception("serviceUnavailableException", "Bedrock is unable to process your request."),
        ("overloaded", "bedrock", "platform"),
        "https://docs.aws.amazon.com/bedrock/latest/userguide/troubleshooting-api-error-codes.html",
    ),
    Case(
        "bedrock-converse-stream-internal",
        "bedrock_converse_stream",
        bedrock_stream_exception("internalServerException", "The server encountered an internal error."),
        ("server_error", "bedrock", "platform"),
        "https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_ConverseStreamOutput.html",
    ),
    Case(
        "bedrock-invoke-stream-throttling",
        "bedrock_invoke_stream",
        bedrock_stream_exception("throttlingException", "Too many requests, please wait before trying again."),
        ("rate_limit", "bedrock", "platform"),
        "https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_ResponseStream.html",
    ),
    Case(
        "bedrock-invoke-stream-model-timeout",
        "bedrock_invoke_stream",
        bedrock_stream_exception("modelTimeoutException", "Model has timed out in processing the request."),
        ("timeout", "bedrock", "platform"),
        "https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_ResponseStream.html",
    ),
    Case(
        "anthropic-bedrock-stream-throttling",
        "anthropic_bedrock_stream",
        bedrock_stream_exception("throttlingException", "Too many requests, please wait before trying again."),
        ("rate_limit", "bedrock", "byok"),
        "https://docs.aws.amazon.com/bedrock/latest/userguide/troubleshooting-api-error-codes.html (body reconstructed "
        "in that shape)",
        byok=("bedrock",),
    ),
]


@pytest.mark.parametrize("case", select(CASES))
def test_stream_failure(server: ProviderServer, case: Case) -> None:
    check(server, case)
