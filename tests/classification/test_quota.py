"""Area 4: quota, every way it is said. A quota is never a rate limit and never retried."""

from __future__ import annotations

import pytest

from byok_tasks.testing.provider_server import ProviderServer, json_reply
from tests.classification._harness import Case, anthropic_error, check, select
from tests.support.fixtures import loopback_only_fixture, provider_server_fixture, server_fixture  # noqa: F401

OPENAI_ERROR_CODES = "https://platform.openai.com/docs/guides/error-codes"


def openai_error(message: str, code: str | None, kind: str = "insufficient_quota") -> dict[str, object]:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


CASES = [
    Case(
        "openai-billing-hard-limit-chat",
        "openai_chat",
        json_reply(
            400,
            openai_error("Billing hard limit has been reached", "billing_hard_limit_reached", "invalid_request_error"),
        ),
        ("quota", "openai", "byok"),
        "https://platform.openai.com/docs/guides/error-codes (body reconstructed in that shape)",
        byok=("openai",),
    ),
    Case(
        "openai-credit-balance-exhausted",
        "openai_chat",
        json_reply(
            429,
            openai_error(
                "Your credit balance is exhausted. Please add credits to continue.", "credit_balance_exhausted"
            ),
        ),
        ("quota", "openai", "platform"),
        OPENAI_ERROR_CODES,
    ),
    Case(
        "openai-organization-spend-limit",
        "openai_chat",
        json_reply(
            429,
            openai_error(
                "Your organization has reached its spend limit for this month.", "organization_spend_limit_exceeded"
            ),
        ),
        ("quota", "openai", "platform"),
        OPENAI_ERROR_CODES,
    ),
    Case(
        "openai-project-spend-limit",
        "openai_chat",
        json_reply(
            429,
            openai_error(
                "This project has reached its monthly spend limit.", "project_spend_limit_exceeded", "requests"
            ),
        ),
        ("quota", "openai", "byok"),
        OPENAI_ERROR_CODES,
        byok=("openai",),
    ),
    Case(
        "openai-organization-usage-limit",
        "openai_embeddings",
        json_reply(
            429,
            openai_error(
                "Your organization has exceeded its usage limit.", "organization_usage_limit_exceeded", "requests"
            ),
        ),
        ("quota", "openai", "platform"),
        OPENAI_ERROR_CODES,
    ),
    Case(
        "anthropic-workspace-usage-limits",
        "anthropic_messages",
        json_reply(
            400,
            anthropic_error(
                "invalid_request_error",
                "You have reached your specified workspace API usage limits. You will regain access on 2026-01-01 at "
                "00:00 UTC.",
            ),
        ),
        ("quota", "anthropic", "byok"),
        "https://docs.anthropic.com/en/api/errors (body reconstructed in that shape)",
        byok=("anthropic",),
    ),
    Case(
        "anthropic-billing-error-stream-free",
        "anthropic_messages",
        json_reply(
            400,
            anthropic_error(
                "invalid_request_error",
                "This organization has been disabled. Your credit balance is too low to access the Claude API.",
            ),
        ),
        ("quota", "anthropic", "platform"),
        "https://docs.anthropic.com/en/api/errors (body reconstructed in that shape)",
    ),
    Case(
        "anthropic-spend-limit-error-code",
        "anthropic_messages",
        json_reply(
            429,
            {
                "type": "error",
                "error": {
                    "type": "rate_limit_error",
                    "message": "You have exceeded your organization's spend limit.",
                    "details": {"error_code": "contract_spend_limit_reached"},
                },
            },
        ),
        ("quota", "anthropic", "platform"),
        "anthropic SDK types/shared/contract_spend_limit_reached_error_details.py",
    ),
    Case(
        "deepseek-402-insufficient-balance",
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
        "https://api-docs.deepseek.com/quick_start/error_codes",
        byok=("deepseek",),
        base_url="https://api.deepseek.com",
    ),
    Case(
        "openrouter-402-more-credits",
        "openai_chat",
        json_reply(
            402,
            {
                "error": {
                    "message": "This request requires more credits, or fewer max_tokens. You requested up to 64000 "
                    "tokens, but can only afford 1234.",
                    "code": 402,
                    "metadata": {"provider_name": None},
                }
            },
        ),
        ("quota", "openrouter", "byok"),
        "https://openrouter.ai/docs/api-reference/errors (body reconstructed in that shape)",
        byok=("openrouter",),
        base_url="https://openrouter.ai/api/v1",
    ),
    Case(
        "litellm-proxy-budget-exceeded",
        "openai_chat",
        json_reply(
            429,
            {
                "error": {
                    "message": "Budget has been exceeded! Current cost: 10.51, Max budget: 10.00",
                    "type": "budget_exceeded",
                    "param": None,
                    "code": "429",
                }
            },
        ),
        ("quota", "litellm", "byok"),
        "https://github.com/BerriAI/litellm/issues/36729",
        byok=("litellm",),
        base_url="https://litellm.acme.dev/v1",
    ),
    Case(
        "litellm-proxy-end-user-budget",
        "openai_chat",
        json_reply(
            400,
            {
                "error": {
                    "message": "ExceededBudget: End User=ishaan3 over budget. Spend=0.00088, Budget=0.0001",
                    "type": "budget_exceeded",
                    "param": "None",
                    "code": "400",
                }
            },
        ),
        ("quota", "litellm", "platform"),
        "https://docs.litellm.ai/docs/proxy/users",
        base_url="https://litellm.acme.dev/v1",
    ),
    Case(
        "gemini-free-tier-per-day",
        "gemini",
        json_reply(
            429,
            {
                "error": {
                    "code": 429,
                    "message": "You exceeded your current quota, please check your plan and billing details.",
                    "status": "RESOURCE_EXHAUSTED",
                    "details": [
                        {
                            "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                            "violations": [
                                {
                                    "quotaMetric": "generativelanguage.googleapis.com/"
                                    "generate_content_free_tier_requests",
                                    "quotaId": "GenerateRequestsPerDayPerProjectPerModel-FreeTier",
                                }
                            ],
                        }
                    ],
                }
            },
        ),
        ("quota", "google", "byok"),
        "https://cloud.google.com/apis/design/errors (body reconstructed in that shape)",
        byok=("google",),
    ),
    Case(
        "groq-tokens-per-day",
        "groq_chat",
        json_reply(
            429,
            {
                "error": {
                    "message": "Rate limit reached for model `llama-3.3-70b-versatile` in organization `org_01` "
                    "service tier `on_demand` on tokens per day (TPD): Limit 100000, Used 99500, Requested 1200.",
                    "type": "tokens",
                    "code": "rate_limit_exceeded",
                }
            },
        ),
        ("quota", "groq", "platform"),
        "https://console.groq.com/docs/errors (body reconstructed in that shape)",
    ),
    Case(
        "azure-insufficient-quota",
        "openai_chat",
        json_reply(
            429,
            {
                "error": {
                    "code": "insufficient_quota",
                    "message": "Insufficient quota. Please check your plan and billing details.",
                }
            },
        ),
        ("quota", "azure_openai", "platform"),
        "https://learn.microsoft.com/azure/ai-services/openai/reference",
        base_url="https://contoso.openai.azure.com/openai/v1/",
    ),
    Case(
        "xai-monthly-spending-limit",
        "openai_chat",
        json_reply(
            429,
            {
                "code": "Some resource has been exhausted",
                "error": "Your team team-1 has either used all available credits or reached its monthly spending "
                "limit. To continue making API requests, please purchase more credits or raise your spending limit.",
            },
        ),
        ("quota", "xai", "byok"),
        "the xAI body shape of tests/classification/test_classify_xai.py (body reconstructed in that shape)",
        byok=("xai",),
        base_url="https://api.x.ai/v1",
    ),
    Case(
        "together-402-credit-limit",
        "openai_chat",
        json_reply(
            402,
            {
                "error": {
                    "message": "Credit limit exceeded. Please navigate to https://api.together.xyz/settings/billing "
                    "to add credit or upgrade your plan.",
                    "type": "credit_limit",
                    "param": None,
                    "code": None,
                }
            },
        ),
        ("quota", "together", "byok"),
        "https://docs.together.ai/docs/error-codes",
        byok=("together",),
        base_url="https://api.together.xyz/v1",
    ),
    Case(
        "dashscope-arrearage",
        "openai_chat",
        json_reply(
            400,
            {
                "error": {
                    "message": "Access denied, please make sure your account is in good standing.",
                    "type": "Arrearage",
                    "param": None,
                    "code": "Arrearage",
                }
            },
        ),
        ("quota", "dashscope", "byok"),
        "https://www.alibabacloud.com/help/en/model-studio/error-code",
        byok=("dashscope",),
        base_url="https://dashscope-intl.aliyuncs.com/compatible-mode/v1",
    ),
    Case(
        "moonshot-exceeded-current-quota",
        "openai_chat",
        json_reply(
            429,
            {
                "error": {
                    "message": "Your account org-abc <ak-def> is suspended, please check your plan and billing details",
                    "type": "exceeded_current_quota_error",
                }
            },
        ),
        ("quota", "moonshot", "byok"),
        "https://platform.moonshot.ai/docs/api/chat#error-explanation",
        byok=("moonshot",),
        base_url="https://api.moonshot.ai/v1",
    ),
    Case(
        "azure-per-minute-is-not-quota",
        "azure_chat",
        json_reply(
            429,
            {
                "error": {
                    "code": "429",
                    "message": "Requests to the ChatCompletions_Create Operation under Azure OpenAI API version "
                    "2024-10-21 have exceeded call rate limit of your current OpenAI S0 pricing tier. Please retry "
                    "after 2 seconds.",
                }
            },
        ),
        ("rate_limit", "azure_openai", "platform"),
        "https://learn.microsoft.com/azure/ai-services/openai/how-to/quota",
    ),
]


@pytest.mark.parametrize("case", select(CASES))
def test_quota_failure(server: ProviderServer, case: Case) -> None:
    check(server, case)
