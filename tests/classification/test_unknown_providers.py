"""Area 7: OpenAI-compatible providers without a table of their own, named after their host."""

from __future__ import annotations

import pytest

from byok_tasks.testing.provider_server import ProviderServer, json_reply, raw_reply
from tests.classification._harness import Case, check, select
from tests.support.fixtures import loopback_only_fixture, provider_server_fixture, server_fixture  # noqa: F401

DEEPSEEK = "https://api.deepseek.com"
DEEPSEEK_ERRORS = "https://api-docs.deepseek.com/quick_start/error_codes"
TOGETHER = "https://api.together.xyz/v1"
FIREWORKS = "https://api.fireworks.ai/inference/v1"
PERPLEXITY = "https://api.perplexity.ai"
CEREBRAS = "https://api.cerebras.ai/v1"
DASHSCOPE = "https://dashscope-intl.aliyuncs.com/compatible-mode/v1"


def openai_error(message: str, code: object = None, kind: str | None = "invalid_request_error") -> dict[str, object]:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


CASES = [
    Case(
        "deepseek-401-authentication-fails",
        "openai_chat",
        json_reply(
            401,
            openai_error(
                "Authentication Fails, Your api key: ****abcd is invalid",
                "invalid_request_error",
                "authentication_error",
            ),
        ),
        ("invalid_key", "deepseek", "byok"),
        DEEPSEEK_ERRORS,
        byok=("deepseek",),
        base_url=DEEPSEEK,
    ),
    Case(
        "deepseek-429-rate-limit",
        "openai_chat",
        json_reply(429, openai_error("Rate Limit Reached", "rate_limit_exceeded", "rate_limit_error")),
        ("rate_limit", "deepseek", "platform"),
        DEEPSEEK_ERRORS,
        base_url=DEEPSEEK,
    ),
    Case(
        "deepseek-503-server-overloaded",
        "openai_chat",
        json_reply(503, openai_error("Server overloaded, please try again later.", None, "server_error")),
        ("overloaded", "deepseek", "byok"),
        DEEPSEEK_ERRORS,
        byok=("deepseek",),
        base_url=DEEPSEEK,
    ),
    Case(
        "deepseek-422-invalid-parameters",
        "openai_chat",
        json_reply(422, openai_error("Invalid Parameters: temperature must be <= 2", "invalid_request_error")),
        ("bad_request", "deepseek", "platform"),
        DEEPSEEK_ERRORS,
        base_url=DEEPSEEK,
    ),
    Case(
        "deepseek-model-not-exist",
        "openai_chat",
        json_reply(400, openai_error("Model Not Exist", "invalid_request_error")),
        ("model_not_found", "deepseek", "platform"),
        "https://api-docs.deepseek.com/quick_start/error_codes (body reconstructed in that shape)",
        base_url=DEEPSEEK,
    ),
    Case(
        "together-401-invalid-api-key",
        "openai_chat",
        json_reply(
            401,
            openai_error(
                "Invalid API key provided. You can find your API key at https://api.together.xyz/settings/api-keys.",
                "invalid_api_key",
            ),
        ),
        ("invalid_key", "together", "byok"),
        "https://docs.together.ai/docs/error-codes",
        byok=("together",),
        base_url=TOGETHER,
    ),
    Case(
        "together-404-model-not-available",
        "openai_chat",
        json_reply(
            404,
            openai_error(
                "Unable to access model meta-llama/Llama-9. Please visit https://api.together.ai/models to view the "
                "list of supported models.",
                "model_not_available",
            ),
        ),
        ("model_not_found", "together", "platform"),
        "https://docs.together.ai/docs/error-codes (body reconstructed in that shape)",
        base_url=TOGETHER,
    ),
    Case(
        "together-429",
        "openai_chat",
        json_reply(
            429,
            openai_error("You are on tier Free, which offers 3 queries per minute for this model.", None, "rate_limit"),
        ),
        ("rate_limit", "together", "byok"),
        "https://docs.together.ai/docs/rate-limits",
        byok=("together",),
        base_url=TOGETHER,
    ),
    Case(
        "fireworks-401-invalid-key",
        "openai_chat",
        json_reply(
            401,
            {
                "error": {
                    "object": "error",
                    "type": "invalid_request_error",
                    "message": "The API key you provided is invalid.",
                }
            },
        ),
        ("invalid_key", "fireworks", "byok"),
        "https://docs.fireworks.ai/troubleshooting/status_error_codes/http_codes",
        byok=("fireworks",),
        base_url=FIREWORKS,
    ),
    Case(
        "fireworks-404-model",
        "openai_chat",
        json_reply(
            404,
            {
                "error": {
                    "object": "error",
                    "type": "invalid_request_error",
                    "message": "Model not found, inaccessible, and/or not deployed",
                }
            },
        ),
        ("model_not_found", "fireworks", "platform"),
        "https://docs.fireworks.ai/troubleshooting/status_error_codes/http_codes (body reconstructed in that shape)",
        base_url=FIREWORKS,
    ),
    Case(
        "perplexity-401-html",
        "openai_chat",
        raw_reply(
            401,
            "<html>\r\n<head><title>401 Authorization Required</title></head>\r\n<body>\r\n<center><h1>401 "
            "Authorization Required</h1></center>\r\n<hr><center>openresty/1.21.4.1</center>\r\n</body>\r\n</html>\r\n",
            content_type="text/html",
        ),
        ("invalid_key", "perplexity", "byok"),
        "https://docs.perplexity.ai/guides/model-cards (body reconstructed in that shape)",
        byok=("perplexity",),
        base_url=PERPLEXITY,
    ),
    Case(
        "perplexity-invalid-model",
        "openai_chat",
        json_reply(
            400,
            {
                "error": {
                    "message": "Invalid model 'llama-3-sonar-large-32k-online'. Permitted models can be found in the "
                    "documentation at https://docs.perplexity.ai/guides/model-cards.",
                    "type": "invalid_model",
                    "code": 400,
                }
            },
        ),
        ("model_not_found", "perplexity", "platform"),
        "https://docs.perplexity.ai/guides/model-cards (body reconstructed in that shape)",
        base_url=PERPLEXITY,
    ),
    Case(
        "cerebras-requests-per-minute",
        "openai_chat",
        json_reply(
            429,
            {
                "message": "Requests per minute limit exceeded - too many requests sent.",
                "type": "too_many_requests_error",
                "param": "quota",
                "code": "request_quota_exceeded",
            },
        ),
        ("rate_limit", "cerebras", "byok"),
        "https://inference-docs.cerebras.ai/support/rate-limits",
        byok=("cerebras",),
        base_url=CEREBRAS,
    ),
    Case(
        "cerebras-wrong-api-key",
        "openai_chat",
        json_reply(
            401,
            {"message": "Wrong API Key", "type": "invalid_request_error", "param": "api_key", "code": "wrong_api_key"},
        ),
        ("invalid_key", "cerebras", "platform"),
        "https://inference-docs.cerebras.ai/support/error",
        base_url=CEREBRAS,
    ),
    Case(
        "dashscope-invalid-api-key",
        "openai_chat",
        json_reply(401, openai_error("Incorrect API key provided. ", "invalid_api_key")),
        ("invalid_key", "dashscope", "byok"),
        "https://www.alibabacloud.com/help/en/model-studio/error-code",
        byok=("dashscope",),
        base_url=DASHSCOPE,
    ),
    Case(
        "dashscope-data-inspection-failed",
        "openai_chat",
        json_reply(
            400,
            openai_error(
                "Input data may contain inappropriate content.", "data_inspection_failed", "data_inspection_failed"
            ),
        ),
        ("content_filter", "dashscope", "platform"),
        "https://www.alibabacloud.com/help/en/model-studio/error-code",
        base_url=DASHSCOPE,
    ),
    Case(
        "dashscope-throttling",
        "openai_chat",
        json_reply(
            429,
            openai_error(
                "Requests rate limit exceeded, please try again later.", "Throttling.RateQuota", "Throttling.RateQuota"
            ),
        ),
        ("rate_limit", "dashscope", "platform"),
        "https://www.alibabacloud.com/help/en/model-studio/error-code",
        base_url=DASHSCOPE,
    ),
    Case(
        "unknown-host-foo-ai",
        "openai_chat",
        json_reply(401, openai_error("Invalid API key.", "invalid_api_key")),
        ("invalid_key", "foo-ai", "byok"),
        "the OpenAI error shape (https://platform.openai.com/docs/guides/error-codes) at a host nobody tabled",
        byok=("foo-ai",),
        base_url="https://api.foo-ai.example.com/v1",
    ),
    Case(
        "unknown-host-inference-acme",
        "openai_chat",
        json_reply(429, openai_error("Too many requests", None, "rate_limit_error")),
        ("rate_limit", "acme-llm", "platform"),
        "the OpenAI error shape at a host nobody tabled",
        base_url="https://inference.acme-llm.io/v1",
    ),
    Case(
        "moonshot-invalid-authentication",
        "openai_chat",
        json_reply(401, {"error": {"message": "Invalid Authentication", "type": "invalid_authentication_error"}}),
        ("invalid_key", "moonshot", "byok"),
        "https://platform.moonshot.ai/docs/api/chat#error-explanation",
        byok=("moonshot",),
        base_url="https://api.moonshot.ai/v1",
    ),
]


@pytest.mark.parametrize("case", select(CASES))
def test_unknown_provider_failure(server: ProviderServer, case: Case) -> None:
    check(server, case)
