"""Area 9: wrapper libraries used as the client: LiteLLM, pydantic-ai, instructor, LangChain's chat models.

None is imported by byok_tasks; their exceptions are read by duck typing (``llm_provider``, ``status_code``,
``body``) or through the SDK error they chain.
"""

from __future__ import annotations

import os

import pytest

from byok_tasks.testing.provider_server import ProviderServer, json_reply
from tests.classification._harness import Case, bedrock_stream_exception, check, select
from tests.support.fixtures import loopback_only_fixture, provider_server_fixture, server_fixture  # noqa: F401

# LiteLLM fetches its price list from GitHub when imported unless told not to.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


def openai_error(message: str, code: str | None, kind: str = "invalid_request_error") -> dict[str, object]:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


INVALID_KEY = openai_error("Incorrect API key provided: sk-test-****-key.", "invalid_api_key")
QUOTA = openai_error(
    "You exceeded your current quota, please check your plan and billing details.",
    "insufficient_quota",
    "insufficient_quota",
)
CONTEXT = openai_error(
    "This model's maximum context length is 128000 tokens. However, your messages resulted in 130000 tokens.",
    "context_length_exceeded",
)
ANTHROPIC_RATE_LIMIT = {
    "type": "error",
    "error": {"type": "rate_limit_error", "message": "This request would exceed your account's rate limit."},
}
ANTHROPIC_OVERLOADED = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}

CASES = [
    Case(
        "litellm-openai-authentication-error",
        "litellm_completion",
        json_reply(401, INVALID_KEY),
        ("invalid_key", "openai", "byok"),
        "https://docs.litellm.ai/docs/exception_mapping",
        byok=("openai",),
    ),
    Case(
        "litellm-openai-context-window-exceeded",
        "litellm_completion",
        json_reply(400, CONTEXT),
        ("context_length", "openai", "platform"),
        "https://docs.litellm.ai/docs/exception_mapping (ContextWindowExceededError)",
    ),
    Case(
        "litellm-openai-quota",
        "litellm_completion",
        json_reply(429, QUOTA),
        ("quota", "openai", "platform"),
        "https://platform.openai.com/docs/guides/error-codes (body reconstructed in that shape)",
    ),
    Case(
        "litellm-anthropic-rate-limit",
        "litellm_completion",
        json_reply(429, ANTHROPIC_RATE_LIMIT),
        ("rate_limit", "anthropic", "byok"),
        "https://docs.litellm.ai/docs/exception_mapping (RateLimitError, llm_provider=anthropic)",
        byok=("anthropic",),
        options={"model": "anthropic/claude-3-5-haiku-latest"},
    ),
    Case(
        "litellm-deepseek-insufficient-balance",
        "litellm_completion",
        json_reply(
            402,
            {
                "error": {
                    "message": "Insufficient Balance",
                    "type": "unknown_error",
                    "param": None,
                    "code": "invalid_request_error",
                }
            },
        ),
        ("quota", "deepseek", "byok"),
        "https://api-docs.deepseek.com/quick_start/error_codes",
        byok=("deepseek",),
        options={"model": "deepseek/deepseek-chat"},
    ),
    Case(
        "litellm-groq-rate-limit",
        "litellm_completion",
        json_reply(
            429,
            {
                "error": {
                    "message": "Rate limit reached for model `llama-3.3-70b-versatile`",
                    "type": "requests",
                    "code": "rate_limit_exceeded",
                }
            },
        ),
        ("rate_limit", "groq", "platform"),
        "https://console.groq.com/docs/errors",
        options={"model": "groq/llama-3.3-70b-versatile"},
    ),
    Case(
        "litellm-openai-content-policy",
        "litellm_completion",
        json_reply(
            400, openai_error("Your request was rejected as a result of our safety system.", "content_policy_violation")
        ),
        ("content_filter", "openai", "platform"),
        "https://docs.litellm.ai/docs/exception_mapping (ContentPolicyViolationError)",
    ),
    Case(
        "pydantic-ai-model-http-error-quota",
        "pydantic_ai_agent",
        json_reply(429, QUOTA),
        ("quota", "openai", "byok"),
        "https://ai.pydantic.dev/api/exceptions/#pydantic_ai.exceptions.ModelHTTPError",
        byok=("openai",),
    ),
    Case(
        "pydantic-ai-deepseek-invalid-key",
        "pydantic_ai_agent",
        json_reply(
            401,
            {
                "error": {
                    "message": "Authentication Fails, Your api key: ****abcd is invalid",
                    "type": "authentication_error",
                    "param": None,
                    "code": "invalid_request_error",
                }
            },
        ),
        ("invalid_key", "deepseek", "byok"),
        "https://api-docs.deepseek.com/quick_start/error_codes",
        byok=("deepseek",),
        base_url="https://api.deepseek.com",
    ),
    Case(
        "pydantic-ai-overloaded-503",
        "pydantic_ai_agent",
        json_reply(
            503,
            {
                "error": {
                    "message": "The engine is currently overloaded, please try again later.",
                    "type": "server_error",
                    "param": None,
                    "code": None,
                }
            },
        ),
        ("overloaded", "openai", "platform"),
        "https://platform.openai.com/docs/guides/error-codes (body reconstructed in that shape)",
    ),
    Case(
        "instructor-context-length",
        "instructor_create",
        json_reply(400, CONTEXT),
        ("context_length", "openai", "platform"),
        "https://python.useinstructor.com/concepts/retrying/",
    ),
    Case(
        "instructor-invalid-key-after-retries",
        "instructor_create",
        (json_reply(401, INVALID_KEY), json_reply(401, INVALID_KEY)),
        ("invalid_key", "openai", "byok"),
        "https://platform.openai.com/docs/guides/error-codes (body reconstructed in that shape)",
        byok=("openai",),
        options={"instructor_retries": 2},
    ),
    Case(
        "langchain-anthropic-overloaded",
        "langchain_anthropic",
        json_reply(529, ANTHROPIC_OVERLOADED),
        ("overloaded", "anthropic", "platform"),
        "https://docs.anthropic.com/en/api/errors (body reconstructed in that shape)",
    ),
    Case(
        "langchain-bedrock-converse-throttling",
        "langchain_bedrock",
        json_reply(
            429,
            {"message": "Too many requests, please wait before trying again."},
            headers={"x-amzn-ErrorType": "ThrottlingException"},
        ),
        ("rate_limit", "bedrock", "byok"),
        "https://docs.aws.amazon.com/bedrock/latest/userguide/troubleshooting-api-error-codes.html (body reconstructed "
        "in that shape)",
        byok=("bedrock",),
    ),
    Case(
        "langchain-bedrock-converse-stream-validation",
        "langchain_bedrock",
        bedrock_stream_exception("validationException", "Input is too long for requested model."),
        ("context_length", "bedrock", "platform"),
        "https://docs.aws.amazon.com/bedrock/latest/userguide/troubleshooting-api-error-codes.html (body reconstructed "
        "in that shape)",
        options={"stream": True},
    ),
    Case(
        "langchain-groq-rate-limit",
        "langchain_groq",
        json_reply(
            429,
            {
                "error": {
                    "message": "Rate limit reached for model `llama-3.3-70b-versatile` on requests per minute "
                    "(RPM): Limit 30, Used 30, Requested 1.",
                    "type": "requests",
                    "code": "rate_limit_exceeded",
                }
            },
        ),
        ("rate_limit", "groq", "byok"),
        "https://console.groq.com/docs/errors (body reconstructed in that shape)",
        byok=("groq",),
    ),
    Case(
        "langchain-mistral-unauthorized",
        "langchain_mistral",
        json_reply(401, {"message": "Unauthorized", "request_id": "8a0d3c1f"}),
        ("invalid_key", "mistral", "byok"),
        "https://docs.mistral.ai/resources/error-glossary (body reconstructed in that shape)",
        byok=("mistral",),
    ),
    Case(
        "langchain-mistral-rate-limited",
        "langchain_mistral",
        json_reply(
            429,
            {
                "object": "error",
                "message": "Requests rate limit exceeded",
                "type": "rate_limited",
                "param": None,
                "code": "1300",
            },
        ),
        ("rate_limit", "mistral", "platform"),
        "https://docs.mistral.ai/resources/error-glossary",
    ),
]


@pytest.mark.parametrize("case", select(CASES))
def test_wrapper_failure(server: ProviderServer, case: Case) -> None:
    check(server, case)
