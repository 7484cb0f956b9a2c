"""Area 8: gateways in front of providers. Whose key failed (the gateway's own, or the provider key it passed
through) and why; a gateway's budget exhausted is ``quota``."""

from __future__ import annotations

import json

import pytest

from byok_tasks.testing.provider_server import ProviderServer, json_reply
from tests.classification._harness import Case, check, select
from tests.support.fixtures import loopback_only_fixture, provider_server_fixture, server_fixture  # noqa: F401

OPENROUTER = "https://openrouter.ai/api/v1"
CLOUDFLARE = "https://gateway.ai.cloudflare.com/v1/0123abcd/prod-gateway"
CLOUDFLARE_ERRORS = "https://developers.cloudflare.com/ai-gateway/reference/errors/"
PORTKEY = "https://api.portkey.ai/v1"
LITELLM_PROXY = "https://litellm.acme.dev/v1"


def openrouter_passthrough(status: int, raw: object, provider: str, is_byok: bool | None) -> object:
    metadata: dict[str, object] = {"raw": raw if isinstance(raw, str) else json.dumps(raw), "provider_name": provider}
    if is_byok is not None:
        metadata["is_byok"] = is_byok
    return json_reply(
        status,
        {"error": {"message": "Provider returned error", "code": status, "metadata": metadata}, "user_id": "user_2x"},
    )


CASES = [
    Case(
        "openrouter-own-key-invalid",
        "openai_chat",
        json_reply(401, {"error": {"message": "No auth credentials found", "code": 401}}),
        ("invalid_key", "openrouter", "byok"),
        "https://openrouter.ai/docs/api-reference/errors",
        byok=("openrouter",),
        base_url=OPENROUTER,
    ),
    Case(
        "openrouter-user-not-found",
        "openai_chat",
        json_reply(401, {"error": {"message": "User not found.", "code": 401}}),
        ("invalid_key", "openrouter", "platform"),
        "https://openrouter.ai/docs/api-reference/errors (body reconstructed in that shape)",
        base_url=OPENROUTER,
    ),
    Case(
        "openrouter-byok-upstream-rate-limit",
        "openai_chat",
        openrouter_passthrough(
            429,
            {
                "type": "error",
                "error": {
                    "type": "rate_limit_error",
                    "message": "Number of request tokens has exceeded your per-minute rate limit",
                },
            },
            "Anthropic",
            True,
        ),
        ("rate_limit", "anthropic", "byok"),
        "https://openrouter.ai/docs/use-cases/byok and https://github.com/diegosouzapw/OmniRoute/issues/3044",
        byok=("anthropic",),
        base_url=OPENROUTER,
    ),
    Case(
        "openrouter-shared-pool-upstream-rate-limit",
        "openai_chat",
        openrouter_passthrough(
            429,
            "z-ai/glm-4.5 is temporarily rate-limited upstream. Please retry shortly, or add your own key to "
            "accumulate your rate limits: https://openrouter.ai/settings/integrations",
            "BaseTen",
            False,
        ),
        ("rate_limit", "openrouter", "byok"),
        "https://github.com/open-webui/computer/issues/293",
        byok=("openrouter",),
        base_url=OPENROUTER,
    ),
    Case(
        "openrouter-raw-openai-region",
        "openai_chat",
        openrouter_passthrough(
            403,
            {
                "error": {
                    "code": "unsupported_country_region_territory",
                    "message": "Country, region, or territory not supported",
                    "param": None,
                    "type": "request_forbidden",
                }
            },
            "OpenAI",
            None,
        ),
        ("permission", "openrouter", "platform"),
        "https://github.com/crmne/ruby_llm/pull/431",
        base_url=OPENROUTER,
    ),
    Case(
        "openrouter-byok-upstream-prompt-too-long",
        "openai_chat",
        openrouter_passthrough(
            400,
            {
                "type": "error",
                "error": {
                    "type": "invalid_request_error",
                    "message": "prompt is too long: 250000 tokens > 200000 maximum",
                },
            },
            "Anthropic",
            True,
        ),
        ("context_length", "anthropic", "platform"),
        "https://github.com/diegosouzapw/OmniRoute/issues/3044 (shape)",
        base_url=OPENROUTER,
    ),
    Case(
        "openrouter-raw-invalid-request-generic",
        "openai_chat",
        openrouter_passthrough(
            400,
            {
                "error": {
                    "type": "invalid_request_error",
                    "code": "invalid_request_error",
                    "message": "Model 'moonshotai/kimi-k2' supports at most 1 image per prompt.",
                    "request_id": "req_1",
                }
            },
            "Crucible",
            False,
        ),
        ("bad_request", "openrouter", "platform"),
        "https://github.com/diegosouzapw/OmniRoute/issues/3044",
        base_url=OPENROUTER,
    ),
    Case(
        "cloudflare-openai-passthrough-invalid-key",
        "openai_chat",
        json_reply(
            401,
            {
                "error": {
                    "message": "Incorrect API key provided: sk-****1234.",
                    "type": "invalid_request_error",
                    "param": None,
                    "code": "invalid_api_key",
                }
            },
        ),
        ("invalid_key", "openai", "byok"),
        "https://developers.cloudflare.com/ai-gateway/providers/openai/ (the provider's body is passed through)",
        byok=("openai",),
        base_url=CLOUDFLARE + "/openai",
    ),
    Case(
        "cloudflare-gateway-unauthorized",
        "openai_chat",
        json_reply(
            401, {"success": False, "result": [], "messages": [], "error": [{"code": 2009, "message": "Unauthorized"}]}
        ),
        ("invalid_key", "cloudflare", "platform"),
        CLOUDFLARE_ERRORS,
        base_url=CLOUDFLARE + "/openai",
    ),
    Case(
        "cloudflare-gateway-rate-limited",
        "openai_chat",
        json_reply(
            429, {"success": False, "result": [], "messages": [], "error": [{"code": 2003, "message": "Rate limited"}]}
        ),
        ("rate_limit", "cloudflare", "byok"),
        CLOUDFLARE_ERRORS,
        byok=("cloudflare",),
        base_url=CLOUDFLARE + "/groq",
    ),
    Case(
        "cloudflare-anthropic-passthrough-overloaded",
        "anthropic_messages",
        json_reply(529, {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
        ("overloaded", "anthropic", "byok"),
        "https://developers.cloudflare.com/ai-gateway/providers/anthropic/",
        byok=("anthropic",),
        base_url=CLOUDFLARE + "/anthropic",
    ),
    Case(
        "cloudflare-groq-passthrough-rate-limit",
        "openai_chat",
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
        "https://developers.cloudflare.com/ai-gateway/providers/groq/",
        base_url=CLOUDFLARE + "/groq",
    ),
    Case(
        "cloudflare-deepseek-passthrough-balance",
        "openai_chat",
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
        "https://developers.cloudflare.com/ai-gateway/providers/deepseek/",
        byok=("deepseek",),
        base_url=CLOUDFLARE + "/deepseek",
    ),
    Case(
        "helicone-openai-passthrough-quota",
        "openai_chat",
        json_reply(
            429,
            {
                "error": {
                    "message": "You exceeded your current quota, please check your plan and billing details.",
                    "type": "insufficient_quota",
                    "param": None,
                    "code": "insufficient_quota",
                }
            },
        ),
        ("quota", "openai", "byok"),
        "https://docs.helicone.ai/integrations/openai/python (oai.helicone.ai relays OpenAI's answer)",
        byok=("openai",),
        base_url="https://oai.helicone.ai/v1",
    ),
    Case(
        "helicone-own-auth",
        "openai_chat",
        json_reply(
            401, {"success": False, "error": "Invalid Helicone-Auth header. Please check your Helicone API key."}
        ),
        ("invalid_key", "helicone", "platform"),
        "https://docs.helicone.ai/getting-started/quick-start (Helicone-Auth header)",
        base_url="https://oai.helicone.ai/v1",
    ),
    Case(
        "portkey-passthrough-anthropic-too-long",
        "openai_chat",
        json_reply(
            400,
            {
                "error": {
                    "message": "anthropic error: prompt is too long: 210000 tokens > 200000 maximum",
                    "type": "invalid_request_error",
                    "param": None,
                    "code": None,
                },
                "provider": "anthropic",
            },
        ),
        ("context_length", "anthropic", "byok"),
        "https://github.com/Portkey-AI/gateway/issues/344 (Portkey prefixes the provider and names it)",
        byok=("anthropic",),
        base_url=PORTKEY,
    ),
    Case(
        "portkey-own-key-invalid",
        "openai_chat",
        json_reply(401, {"status": "failure", "message": "Invalid API Key"}),
        ("invalid_key", "portkey", "byok"),
        "https://github.com/Portkey-AI/gateway/pull/1708 (the gateway's own failure shape)",
        byok=("portkey",),
        base_url=PORTKEY,
    ),
    Case(
        "litellm-proxy-invalid-virtual-key",
        "openai_chat",
        json_reply(
            401,
            {
                "error": {
                    "message": "Authentication Error, Invalid proxy server token passed. "
                    "Received API Key = sk-...abcd, "
                    "Key Hash (Token) =e3b0c442. Unable to find token in cache or `LiteLLM_VerificationTokenTable`",
                    "type": "auth_error",
                    "param": "None",
                    "code": "401",
                }
            },
        ),
        ("invalid_key", "litellm", "byok"),
        "https://docs.litellm.ai/docs/exception_mapping (body reconstructed in that shape)",
        byok=("litellm",),
        base_url=LITELLM_PROXY,
    ),
    Case(
        "litellm-proxy-passthrough-anthropic-rate-limit",
        "openai_chat",
        json_reply(
            429,
            {
                "error": {
                    "message": 'litellm.RateLimitError: AnthropicException - {"type":"error","error":{"type":'
                    '"rate_limit_error","message":"Number of request tokens has exceeded your per-minute rate '
                    'limit"}}. Received Model Group=claude-sonnet\nAvailable Model Group Fallbacks=None',
                    "type": "throttling_error",
                    "param": None,
                    "code": "429",
                }
            },
        ),
        ("rate_limit", "anthropic", "byok"),
        "https://docs.anthropic.com/en/api/errors (body reconstructed in that shape)",
        byok=("anthropic",),
        base_url=LITELLM_PROXY,
    ),
]


@pytest.mark.parametrize("case", select(CASES))
def test_gateway_failure(server: ProviderServer, case: Case) -> None:
    check(server, case)
