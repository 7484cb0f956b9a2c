"""Area 2: the same provider on another platform. The provider is whose credentials and bill were used."""

from __future__ import annotations

import pytest

from byok_tasks.testing.provider_server import ProviderServer, json_reply
from tests.classification._harness import Case, anthropic_error, check, select
from tests.support.fixtures import loopback_only_fixture, provider_server_fixture, server_fixture  # noqa: F401

AZURE_V1 = "https://contoso.openai.azure.com/openai/v1/"
BEDROCK_ERRORS = "https://docs.aws.amazon.com/bedrock/latest/userguide/troubleshooting-api-error-codes.html"


def aws_reply(status: int, error_type: str, message: str) -> object:
    # Bedrock's REST answers carry the exception name only in this header; the body has the message.
    return json_reply(
        status,
        {"message": message},
        headers={"x-amzn-ErrorType": f"{error_type}:http://internal.amazon.com/coral/com.amazon.bedrock/"},
    )


def google_error(code: int, status: str, message: str) -> dict[str, object]:
    return {"error": {"code": code, "message": message, "status": status}}


CASES = [
    Case(
        "anthropic-bedrock-throttling-header-only",
        "anthropic_bedrock",
        aws_reply(429, "ThrottlingException", "Too many requests, please wait before trying again."),
        ("rate_limit", "bedrock", "byok"),
        BEDROCK_ERRORS,
        byok=("bedrock",),
    ),
    Case(
        "anthropic-bedrock-validation-too-long",
        "anthropic_bedrock",
        aws_reply(400, "ValidationException", "Input is too long for requested model."),
        ("context_length", "bedrock", "platform"),
        "https://docs.aws.amazon.com/bedrock/latest/userguide/troubleshooting-api-error-codes.html (body reconstructed "
        "in that shape)",
    ),
    Case(
        "anthropic-bedrock-unrecognized-client",
        "anthropic_bedrock",
        aws_reply(403, "UnrecognizedClientException", "The security token included in the request is invalid."),
        ("invalid_key", "bedrock", "byok"),
        "https://docs.aws.amazon.com/bedrock/latest/userguide/troubleshooting-api-error-codes.html (body reconstructed "
        "in that shape)",
        byok=("bedrock",),
    ),
    Case(
        "anthropic-bedrock-access-denied",
        "anthropic_bedrock",
        aws_reply(403, "AccessDeniedException", "You don't have access to the model with the specified model ID."),
        ("permission", "bedrock", "platform"),
        "https://docs.aws.amazon.com/bedrock/latest/userguide/troubleshooting-api-error-codes.html (body reconstructed "
        "in that shape)",
    ),
    Case(
        "anthropic-bedrock-service-unavailable",
        "anthropic_bedrock",
        aws_reply(503, "ServiceUnavailableException", "Bedrock is unable to process your request."),
        ("overloaded", "bedrock", "platform"),
        BEDROCK_ERRORS,
    ),
    Case(
        "anthropic-bedrock-model-not-ready",
        "anthropic_bedrock",
        aws_reply(429, "ModelNotReadyException", "Model is not ready to serve inference requests. Try again later."),
        ("overloaded", "bedrock", "platform"),
        "https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_InvokeModel.html",
    ),
    Case(
        "anthropic-bedrock-prompt-too-long",
        "anthropic_bedrock",
        json_reply(400, {"message": "prompt is too long: 205000 tokens > 200000 maximum"}),
        ("context_length", "bedrock", "platform"),
        "https://docs.aws.amazon.com/bedrock/latest/userguide/troubleshooting-api-error-codes.html (Bedrock relays "
        "Anthropic's message; body reconstructed in that shape)",
    ),
    Case(
        "anthropic-vertex-quota-exceeded",
        "anthropic_vertex",
        json_reply(
            429,
            google_error(
                429,
                "RESOURCE_EXHAUSTED",
                "Quota exceeded for aiplatform.googleapis.com/online_prediction_requests_per_base_model with base "
                "model: anthropic-claude-3-5-sonnet. Please submit a quota increase request. "
                "https://cloud.google.com/vertex-ai/docs/generative-ai/quotas-genai.",
            ),
        ),
        ("rate_limit", "google", "byok"),
        "https://cloud.google.com/apis/design/errors (body reconstructed in that shape)",
        byok=("google",),
    ),
    Case(
        "anthropic-vertex-overloaded",
        "anthropic_vertex",
        json_reply(529, anthropic_error("overloaded_error", "Overloaded")),
        ("overloaded", "google", "platform"),
        "https://cloud.google.com/apis/design/errors (body reconstructed in that shape)",
    ),
    Case(
        "anthropic-vertex-prompt-too-long",
        "anthropic_vertex",
        json_reply(400, anthropic_error("invalid_request_error", "prompt is too long: 210000 tokens > 200000 maximum")),
        ("context_length", "google", "platform"),
        "https://cloud.google.com/apis/design/errors (body reconstructed in that shape)",
    ),
    Case(
        "anthropic-vertex-permission-denied",
        "anthropic_vertex",
        json_reply(
            403,
            google_error(
                403,
                "PERMISSION_DENIED",
                "Permission 'aiplatform.endpoints.predict' denied on resource '//aiplatform.googleapis.com/projects/"
                "acme-prod/locations/us-east5/publishers/anthropic/models/claude-3-5-sonnet' (or it may not exist).",
            ),
        ),
        ("permission", "google", "platform"),
        "https://cloud.google.com/apis/design/errors (body reconstructed in that shape)",
    ),
    Case(
        "anthropic-vertex-unauthenticated",
        "anthropic_vertex",
        json_reply(
            401,
            google_error(
                401,
                "UNAUTHENTICATED",
                "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other "
                "valid authentication credential.",
            ),
        ),
        ("invalid_key", "google", "byok"),
        "https://cloud.google.com/apis/design/errors#handling_errors",
        byok=("google",),
    ),
    Case(
        "vertex-gemini-resource-exhausted",
        "vertex_gemini",
        json_reply(
            429,
            google_error(
                429,
                "RESOURCE_EXHAUSTED",
                "Resource exhausted. Please try again later. Please refer to "
                "https://cloud.google.com/vertex-ai/generative-ai/docs/error-code-429 for more details.",
            ),
        ),
        ("rate_limit", "google", "platform"),
        "https://cloud.google.com/vertex-ai/generative-ai/docs/error-code-429",
    ),
    Case(
        "vertex-gemini-input-token-count",
        "vertex_gemini",
        json_reply(
            400,
            google_error(
                400,
                "INVALID_ARGUMENT",
                "The input token count (1500000) exceeds the maximum number of tokens allowed (1048576).",
            ),
        ),
        ("context_length", "google", "platform"),
        "https://cloud.google.com/apis/design/errors (body reconstructed in that shape)",
    ),
    Case(
        "vertex-gemini-model-not-found",
        "vertex_gemini",
        json_reply(
            404,
            google_error(
                404,
                "NOT_FOUND",
                "Publisher Model `projects/acme-prod/locations/us-central1/publishers/google/models/gemini-9` was not "
                "found or your project does not have access to it.",
            ),
        ),
        ("model_not_found", "google", "byok"),
        "https://cloud.google.com/apis/design/errors (body reconstructed in that shape)",
        byok=("google",),
    ),
    Case(
        "azure-v1-token-rate-limit",
        "openai_chat",
        json_reply(
            429,
            {
                "error": {
                    "code": "429",
                    "message": "Requests to the ChatCompletions_Create Operation under Azure OpenAI API version "
                    "2024-10-21 have exceeded token rate limit of your current OpenAI S0 pricing tier. Please retry "
                    "after 6 seconds.",
                }
            },
            headers={"retry-after": "6"},
        ),
        ("rate_limit", "azure_openai", "byok"),
        "https://learn.microsoft.com/azure/ai-services/openai/quotas-limits",
        byok=("azure_openai",),
        base_url=AZURE_V1,
    ),
    Case(
        "azure-v1-deployment-not-found",
        "openai_chat",
        json_reply(
            404,
            {
                "error": {
                    "code": "DeploymentNotFound",
                    "message": "The API deployment for this resource does not exist. If you created the deployment "
                    "within the last 5 minutes, please wait a moment and try again.",
                }
            },
        ),
        ("model_not_found", "azure_openai", "platform"),
        "https://learn.microsoft.com/azure/ai-services/openai/reference (body reconstructed in that shape)",
        base_url=AZURE_V1,
    ),
    Case(
        "azure-v1-invalid-subscription-key",
        "openai_chat",
        json_reply(
            401,
            {
                "error": {
                    "code": "401",
                    "message": "Access denied due to invalid subscription key or wrong API endpoint. Make sure to "
                    "provide a valid key for an active subscription and use a correct regional API endpoint for your "
                    "resource.",
                }
            },
        ),
        ("invalid_key", "azure_openai", "byok"),
        "https://learn.microsoft.com/azure/ai-services/openai/reference (body reconstructed in that shape)",
        byok=("azure_openai",),
        base_url=AZURE_V1,
    ),
    Case(
        "bedrock-converse-invalid-model-id",
        "bedrock_converse",
        aws_reply(400, "ValidationException", "The provided model identifier is invalid."),
        ("model_not_found", "bedrock", "platform"),
        "https://docs.aws.amazon.com/bedrock/latest/userguide/troubleshooting-api-error-codes.html (body reconstructed "
        "in that shape)",
    ),
    Case(
        "bedrock-converse-header-only-throttling",
        "bedrock_converse",
        json_reply(429, {}, headers={"x-amzn-ErrorType": "ThrottlingException"}),
        ("rate_limit", "bedrock", "platform"),
        "https://docs.aws.amazon.com/bedrock/latest/APIReference/CommonErrors.html",
    ),
]


@pytest.mark.parametrize("case", select(CASES))
def test_platform_failure(server: ProviderServer, case: Case) -> None:
    check(server, case)
