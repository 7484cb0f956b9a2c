"""Area 3: every endpoint, not only chat: embeddings, images, audio, Responses, files and batches."""

from __future__ import annotations

import pytest

from byok_tasks.testing.provider_server import ProviderServer, json_reply, raw_reply
from tests.classification._harness import Case, check, select
from tests.support.fixtures import loopback_only_fixture, provider_server_fixture, server_fixture  # noqa: F401

AZURE_V1 = "https://contoso.openai.azure.com/openai/v1/"


def openai_error(
    message: str, code: str | None, kind: str = "invalid_request_error", param: str | None = None
) -> dict[str, object]:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


CASES = [
    Case(
        "images-moderation-blocked",
        "openai_images",
        json_reply(
            400,
            openai_error(
                "Your request was rejected by the safety system. If you believe this is an error, contact us at "
                "help.openai.com and include the request ID req_123.",
                "moderation_blocked",
                "image_generation_user_error",
            ),
        ),
        ("content_filter", "openai", "byok"),
        "https://platform.openai.com/docs/guides/error-codes (body reconstructed in that shape)",
        byok=("openai",),
    ),
    Case(
        "images-billing-hard-limit",
        "openai_images",
        json_reply(400, openai_error("Billing hard limit has been reached", "billing_hard_limit_reached")),
        ("quota", "openai", "platform"),
        "https://platform.openai.com/docs/guides/error-codes (body reconstructed in that shape)",
    ),
    Case(
        "images-safety-system-code-null",
        "openai_images",
        json_reply(
            400,
            openai_error(
                "Your request was rejected as a result of our safety system. Your prompt may contain text that is not "
                "allowed by our safety system.",
                None,
            ),
        ),
        ("content_filter", "openai", "platform"),
        "https://platform.openai.com/docs/guides/error-codes (body reconstructed in that shape)",
    ),
    Case(
        "azure-images-content-filter-innererror",
        "openai_images",
        json_reply(
            400,
            {
                "error": {
                    "code": "contentFilter",
                    "message": "Your task failed as a result of our safety system.",
                    "innererror": {
                        "code": "ResponsibleAIPolicyViolation",
                        "content_filter_result": {"sexual": {"filtered": True, "severity": "high"}},
                    },
                }
            },
        ),
        ("content_filter", "azure_openai", "byok"),
        "https://learn.microsoft.com/azure/ai-services/openai/concepts/content-filter#dall-e-error-response",
        byok=("azure_openai",),
        base_url=AZURE_V1,
    ),
    Case(
        "azure-chat-content-filter-innererror-code-null",
        "openai_chat",
        json_reply(
            400,
            {
                "error": {
                    "message": "The response was filtered due to the prompt triggering Azure OpenAI's content "
                    "management policy.",
                    "type": None,
                    "param": "prompt",
                    "code": None,
                    "status": 400,
                    "innererror": {"code": "ResponsibleAIPolicyViolation", "content_filter_result": {}},
                }
            },
        ),
        ("content_filter", "azure_openai", "platform"),
        "https://learn.microsoft.com/azure/ai-services/openai/concepts/content-filter",
        base_url=AZURE_V1,
    ),
    Case(
        "embeddings-maximum-context-length-code-null",
        "openai_embeddings",
        json_reply(
            400,
            openai_error(
                "This model's maximum context length is 8192 tokens, however you requested 10000 tokens (10000 in "
                "your prompt; 0 for the completion). Please reduce your prompt; or completion length.",
                None,
            ),
        ),
        ("context_length", "openai", "platform"),
        "https://platform.openai.com/docs/guides/error-codes (body reconstructed in that shape)",
    ),
    Case(
        "embeddings-too-many-inputs",
        "openai_embeddings",
        json_reply(
            400,
            openai_error(
                "'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference.",
                None,
            ),
        ),
        ("bad_request", "openai", "platform"),
        "https://platform.openai.com/docs/guides/error-codes (body reconstructed in that shape)",
    ),
    Case(
        "azure-embeddings-too-many-inputs",
        "openai_embeddings",
        json_reply(
            400,
            {
                "error": {
                    "code": "OperationNotSupported",
                    "message": "Too many inputs. The max number of inputs is 2048.",
                }
            },
        ),
        ("bad_request", "azure_openai", "platform"),
        "https://learn.microsoft.com/azure/ai-services/openai/reference (body reconstructed in that shape)",
        base_url=AZURE_V1,
    ),
    Case(
        "transcription-413-file-too-large",
        "openai_transcription",
        json_reply(
            413,
            openai_error("Maximum content size limit (26214400) exceeded (26228340 bytes read)", None, "server_error"),
        ),
        ("context_length", "openai", "byok"),
        "https://platform.openai.com/docs/guides/error-codes (body reconstructed in that shape)",
        byok=("openai",),
    ),
    Case(
        "transcription-invalid-file-format",
        "openai_transcription",
        json_reply(
            400,
            openai_error(
                "Invalid file format. Supported formats: ['flac', 'm4a', 'mp3', 'mp4', 'mpeg', 'mpga', 'oga', 'ogg', "
                "'wav', 'webm']",
                None,
            ),
        ),
        ("bad_request", "openai", "platform"),
        "https://platform.openai.com/docs/guides/error-codes (body reconstructed in that shape)",
    ),
    Case(
        "speech-insufficient-quota",
        "openai_speech",
        json_reply(
            429,
            openai_error(
                "You exceeded your current quota, please check your plan and billing details.",
                "insufficient_quota",
                "insufficient_quota",
            ),
        ),
        ("quota", "openai", "platform"),
        "https://platform.openai.com/docs/guides/error-codes/api-errors",
    ),
    Case(
        "responses-context-window",
        "openai_responses",
        json_reply(
            400,
            openai_error(
                "Your input exceeds the context window of this model. Please adjust your input and try again.",
                "context_length_exceeded",
                param="input",
            ),
        ),
        ("context_length", "openai", "platform"),
        "https://platform.openai.com/docs/guides/error-codes (body reconstructed in that shape)",
    ),
    Case(
        "responses-invalid-value-code-null",
        "openai_responses",
        json_reply(
            400,
            openai_error(
                "Unsupported parameter: 'temperature' is not supported with this model.",
                "unsupported_parameter",
                param="temperature",
            ),
        ),
        ("bad_request", "openai", "platform"),
        "https://platform.openai.com/docs/guides/error-codes (body reconstructed in that shape)",
    ),
    Case(
        "responses-model-not-found",
        "openai_responses",
        json_reply(
            404,
            openai_error(
                "The model `gpt-9` does not exist or you do not have access to it.", "model_not_found", param="model"
            ),
        ),
        ("model_not_found", "openai", "byok"),
        "https://platform.openai.com/docs/guides/error-codes",
        byok=("openai",),
    ),
    Case(
        "responses-organization-verification",
        "openai_responses",
        json_reply(
            400,
            openai_error(
                "Your organization must be verified to use the model `o3`. Please go to: "
                "https://platform.openai.com/settings/organization/general and click on Verify Organization.",
                "unsupported_value",
                param="model",
            ),
        ),
        ("permission", "openai", "platform"),
        "https://platform.openai.com/docs/guides/error-codes (body reconstructed in that shape)",
    ),
    Case(
        "files-413-too-large",
        "openai_files",
        raw_reply(413, "Request Entity Too Large"),
        ("context_length", "openai", "platform"),
        "https://platform.openai.com/docs/api-reference/files/create (512 MB limit; answer of the edge)",
    ),
    Case(
        "batch-enqueued-token-limit",
        "openai_batch",
        json_reply(
            400,
            openai_error(
                "Enqueued token limit reached for gpt-4o in organization org-abc. Limit: 90,000 enqueued tokens. "
                "Please try again once some in_progress batches have been completed.",
                "token_limit_exceeded",
            ),
        ),
        ("rate_limit", "openai", "platform"),
        "https://platform.openai.com/docs/guides/error-codes (body reconstructed in that shape)",
    ),
    Case(
        "batch-billing-hard-limit",
        "openai_batch",
        json_reply(400, openai_error("Billing hard limit has been reached", "billing_hard_limit_reached")),
        ("quota", "openai", "byok"),
        "https://platform.openai.com/docs/guides/error-codes (body reconstructed in that shape)",
        byok=("openai",),
    ),
    Case(
        "gemini-embed-input-token-count",
        "gemini_embed",
        json_reply(
            400,
            {
                "error": {
                    "code": 400,
                    "message": "The input token count (3000) exceeds the maximum number of tokens allowed (2048).",
                    "status": "INVALID_ARGUMENT",
                }
            },
        ),
        ("context_length", "google", "platform"),
        "https://cloud.google.com/apis/design/errors (body reconstructed in that shape)",
    ),
]


@pytest.mark.parametrize("case", select(CASES))
def test_endpoint_failure(server: ProviderServer, case: Case) -> None:
    check(server, case)
