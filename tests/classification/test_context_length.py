"""Area 5: context length, every way each provider says the prompt is too long."""

from __future__ import annotations

import pytest

from byok_tasks.testing.provider_server import ProviderServer, json_reply
from tests.classification._harness import Case, check, select
from tests.support.fixtures import loopback_only_fixture, provider_server_fixture, server_fixture  # noqa: F401


def openai_error(message: str, code: str | None = None, kind: str = "invalid_request_error") -> dict[str, object]:
    return {"error": {"message": message, "type": kind, "param": "messages", "code": code}}


CASES = [
    Case(
        "anthropic-input-length-and-max-tokens",
        "anthropic_messages",
        json_reply(
            400,
            {
                "type": "error",
                "error": {
                    "type": "invalid_request_error",
                    "message": "input length and `max_tokens` exceed context limit: 197000 + 8192 > 200000, decrease "
                    "input length or `max_tokens` and try again",
                },
            },
        ),
        ("context_length", "anthropic", "byok"),
        "https://docs.anthropic.com/en/api/errors (body reconstructed in that shape)",
        byok=("anthropic",),
    ),
    Case(
        "anthropic-request-too-large-413",
        "anthropic_messages",
        json_reply(
            413,
            {
                "type": "error",
                "error": {
                    "type": "request_too_large",
                    "message": "Request exceeds the maximum allowed number of bytes.",
                },
            },
        ),
        ("context_length", "anthropic", "platform"),
        "https://docs.anthropic.com/en/api/errors",
    ),
    Case(
        "openai-chat-maximum-context-length-code-null",
        "openai_chat",
        json_reply(
            400,
            openai_error(
                "This model's maximum context length is 128000 tokens. However, your messages resulted in 130412 "
                "tokens. Please reduce the length of the messages."
            ),
        ),
        ("context_length", "openai", "platform"),
        "https://platform.openai.com/docs/guides/error-codes (body reconstructed in that shape)",
    ),
    Case(
        "openai-string-too-long",
        "openai_chat",
        json_reply(
            400,
            openai_error(
                "Invalid 'messages[1].content': string too long. Expected a string with maximum length 10485760, but "
                "got a string with length 12000000 instead.",
                "string_above_max_length",
            ),
        ),
        ("context_length", "openai", "platform"),
        "https://platform.openai.com/docs/guides/error-codes (body reconstructed in that shape)",
    ),
    Case(
        "deepseek-maximum-context-length",
        "openai_chat",
        json_reply(
            400,
            openai_error(
                "This model's maximum context length is 65536 tokens. However, you requested 70000 tokens (70000 in "
                "the messages, 0 in the completion). Please reduce the length of the messages or completion.",
                "invalid_request_error",
            ),
        ),
        ("context_length", "deepseek", "byok"),
        "https://api-docs.deepseek.com/quick_start/error_codes (body reconstructed in that shape)",
        byok=("deepseek",),
        base_url="https://api.deepseek.com/v1",
    ),
    Case(
        "bedrock-converse-prompt-too-long-model-error",
        "bedrock_converse",
        json_reply(
            400,
            {"message": "The model returned the following errors: prompt is too long: 250000 tokens > 200000 maximum"},
            headers={"x-amzn-ErrorType": "ValidationException"},
        ),
        ("context_length", "bedrock", "platform"),
        "https://docs.aws.amazon.com/bedrock/latest/userguide/troubleshooting-api-error-codes.html (body reconstructed "
        "in that shape)",
    ),
    Case(
        "bedrock-converse-max-context-llama",
        "bedrock_converse",
        json_reply(
            400,
            {"message": "This model's maximum context length is 8192 tokens. Please reduce the length of the prompt."},
            headers={"x-amzn-ErrorType": "ValidationException"},
        ),
        ("context_length", "bedrock", "byok"),
        "https://docs.aws.amazon.com/bedrock/latest/userguide/troubleshooting-api-error-codes.html (body reconstructed "
        "in that shape)",
        byok=("bedrock",),
    ),
    Case(
        "groq-413-request-too-large",
        "groq_chat",
        json_reply(
            413,
            {
                "error": {
                    "message": "Request too large for model `llama-3.1-8b-instant` in organization `org_01` service "
                    "tier `on_demand` on tokens per minute (TPM): Limit 6000, Requested 9000, please reduce your "
                    "message size and try again.",
                    "type": "tokens",
                    "code": "rate_limit_exceeded",
                }
            },
        ),
        ("context_length", "groq", "platform"),
        "https://console.groq.com/docs/errors (body reconstructed in that shape)",
    ),
    Case(
        "together-inputs-plus-max-new-tokens",
        "openai_chat",
        json_reply(
            400,
            openai_error(
                "Input validation error: `inputs` tokens + `max_new_tokens` must be <= 8193. Given: 8000 `inputs` "
                "tokens and 1000 `max_new_tokens`"
            ),
        ),
        ("context_length", "together", "platform"),
        "https://docs.together.ai/docs/error-codes (body reconstructed in that shape)",
        base_url="https://api.together.xyz/v1",
    ),
    Case(
        "fireworks-prompt-too-long",
        "openai_chat",
        json_reply(
            400,
            {
                "error": {
                    "object": "error",
                    "type": "invalid_request_error",
                    "message": "The prompt is too long: 140000, model maximum context length: 131072",
                }
            },
        ),
        ("context_length", "fireworks", "byok"),
        "https://docs.fireworks.ai/troubleshooting/status_error_codes/http_codes (body reconstructed in that shape)",
        byok=("fireworks",),
        base_url="https://api.fireworks.ai/inference/v1",
    ),
    Case(
        "cerebras-context-length-exceeded",
        "openai_chat",
        json_reply(
            400,
            {
                "message": "Please reduce the length of the messages or completion. Current length is 9000 while "
                "limit is 8192",
                "type": "invalid_request_error",
                "param": "messages",
                "code": "context_length_exceeded",
            },
        ),
        ("context_length", "cerebras", "platform"),
        "https://inference-docs.cerebras.ai/support/error",
        base_url="https://api.cerebras.ai/v1",
    ),
    Case(
        "openrouter-endpoint-maximum-context",
        "openai_chat",
        json_reply(
            400,
            {
                "error": {
                    "message": "This endpoint's maximum context length is 200000 tokens. However, you requested about "
                    "250000 tokens (242000 of text input, 8000 in the output). Please reduce the length of either "
                    'one, or use the "middle-out" transform to compress your prompt automatically.',
                    "code": 400,
                    "metadata": {"provider_name": None},
                }
            },
        ),
        ("context_length", "openrouter", "byok"),
        "https://openrouter.ai/docs/api-reference/errors (body reconstructed in that shape)",
        byok=("openrouter",),
        base_url="https://openrouter.ai/api/v1",
    ),
    Case(
        "xai-maximum-prompt-length",
        "openai_chat",
        json_reply(
            400,
            {
                "code": "Client specified an invalid argument",
                "error": "This model's maximum prompt length is 131072 but the request contains 140000 tokens.",
            },
        ),
        ("context_length", "xai", "platform"),
        "the xAI body shape of tests/classification/test_classify_xai.py (body reconstructed in that shape)",
        base_url="https://api.x.ai/v1",
    ),
    Case(
        "dashscope-range-of-input-length",
        "openai_chat",
        json_reply(
            400,
            {
                "error": {
                    "message": "Range of input length should be [1, 30720]",
                    "type": "invalid_request_error",
                    "param": None,
                    "code": "invalid_parameter_error",
                }
            },
        ),
        ("context_length", "dashscope", "byok"),
        "https://www.alibabacloud.com/help/en/model-studio/error-code (body reconstructed in that shape)",
        byok=("dashscope",),
        base_url="https://dashscope.aliyuncs.com/compatible-mode/v1",
    ),
    Case(
        "mistral-too-large-for-model",
        "langchain_mistral",
        json_reply(
            400,
            {
                "object": "error",
                "message": "Prompt contains 40000 tokens and 0 draft tokens, too large for model with 32768 maximum "
                "context length",
                "type": "invalid_request_error",
                "param": None,
                "code": None,
            },
        ),
        ("context_length", "mistral", "platform"),
        "https://docs.mistral.ai/resources/error-glossary (body reconstructed in that shape)",
    ),
    Case(
        "perplexity-exceeds-context",
        "openai_chat",
        json_reply(
            400,
            {
                "error": {
                    "message": "The input exceeds the model's context window of 127072 tokens.",
                    "type": "invalid_request_error",
                    "code": 400,
                }
            },
        ),
        ("context_length", "perplexity", "byok"),
        "https://docs.perplexity.ai/guides/model-cards",
        byok=("perplexity",),
        base_url="https://api.perplexity.ai",
    ),
]


@pytest.mark.parametrize("case", select(CASES))
def test_context_length_failure(server: ProviderServer, case: Case) -> None:
    check(server, case)
