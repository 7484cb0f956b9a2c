"""Azure OpenAI, through the openai SDK's AzureOpenAI client; the request keeps its real host.

The client's HTTP transport sends the bytes to the loopback provider while the request
(and so the exception) still names ``contoso.openai.azure.com``: only the host tells
Azure from OpenAI, both answer through the same SDK classes.
"""

from __future__ import annotations

from byok_tasks import classify
from byok_tasks.testing.provider_server import ProviderServer, hang_up, json_reply, stall
from tests.support.clients import STALL, STALL_TIMEOUT, azure_client, chat, raised_by
from tests.support.fixtures import loopback_only_fixture, provider_server_fixture, server_fixture  # noqa: F401


def azure_failure(server: ProviderServer, status: int, body: object, **headers: str):  # type: ignore[no-untyped-def]
    server.reply(json_reply(status, body, headers=headers))
    failure = classify(raised_by(chat(azure_client(server))))
    assert failure is not None
    assert failure.provider == "azure_openai"
    return failure


def test_invalid_subscription_key_is_invalid_key(server: ProviderServer) -> None:
    # Body: https://github.com/SciSharp/BotSharp/issues/386 (the code repeats the status).
    failure = azure_failure(
        server,
        401,
        {
            "error": {
                "code": "401",
                "message": "Access denied due to invalid subscription key or wrong API endpoint. Make sure to "
                "provide a valid key for an active subscription and use a correct regional API endpoint for "
                "your resource.",
            }
        },
    )
    assert (failure.reason, failure.code) == ("invalid_key", None)


def test_prompt_blocked_by_content_filter_is_content_filter(server: ProviderServer) -> None:
    # Body: https://github.com/vibrantlabsai/ragas/issues/649
    failure = azure_failure(
        server,
        400,
        {
            "error": {
                "message": "The response was filtered due to the prompt triggering Azure OpenAI's content management "
                "policy. Please modify your prompt and retry.",
                "type": None,
                "param": "prompt",
                "code": "content_filter",
                "status": 400,
                "innererror": {
                    "code": "ResponsibleAIPolicyViolation",
                    "content_filter_result": {"violence": {"filtered": True, "severity": "medium"}},
                },
            }
        },
    )
    assert (failure.reason, failure.code) == ("content_filter", "content_filter")


def test_missing_deployment_is_model_not_found(server: ProviderServer) -> None:
    # Body: https://github.com/chatboxai/chatbox/issues/861
    failure = azure_failure(
        server,
        404,
        {
            "error": {
                "code": "DeploymentNotFound",
                "message": "The API deployment for this resource does not exist. If you created the deployment within "
                "the last 5 minutes, please wait a moment and try again.",
            }
        },
    )
    assert failure.reason == "model_not_found"


def test_token_rate_limit_is_rate_limit_with_retry_after(server: ProviderServer) -> None:
    # Body: https://github.com/DmitryKatson/bc-code-interpreter/issues/2 ("Please retry after 60 seconds").
    failure = azure_failure(
        server,
        429,
        {
            "error": {
                "code": "429",
                "message": "Requests to the ChatCompletions_Create Operation under Azure OpenAI API version 2024-02-01 "
                "have exceeded token rate limit of your current OpenAI S0 pricing tier. Please retry after 60 seconds.",
            }
        },
        **{"retry-after": "60"},
    )
    assert (failure.reason, failure.retry_after, failure.retryable) == ("rate_limit", 60.0, True)


def test_rate_limit_that_clears_in_a_day_is_quota(server: ProviderServer) -> None:
    # Body: https://github.com/alex-wolf-ps/dbchatprov2/issues/2 ("Please retry after 86400 seconds").
    failure = azure_failure(
        server,
        429,
        {
            "error": {
                "code": "429",
                "message": "Requests to the ChatCompletions_Create Operation under Azure OpenAI API version "
                "2024-05-01-preview have exceeded token rate limit of your current OpenAI S0 pricing tier. "
                "Please retry after 86400 seconds.",
            }
        },
        **{"retry-after": "86400"},
    )
    assert (failure.reason, failure.retry_after, failure.retryable) == ("quota", 86400.0, False)


def test_context_length_exceeded_is_context_length(server: ProviderServer) -> None:
    # Azure returns OpenAI's body for this (https://learn.microsoft.com/azure/ai-services/openai/reference);
    # message as in https://github.com/crewAIInc/crewAI-examples/issues/121.
    failure = azure_failure(
        server,
        400,
        {
            "error": {
                "message": "This model's maximum context length is 8192 tokens. However, your messages resulted in "
                "8227 tokens. Please reduce the length of the messages.",
                "type": "invalid_request_error",
                "param": "messages",
                "code": "context_length_exceeded",
            }
        },
    )
    assert failure.reason == "context_length"


def test_timeout_is_timeout(server: ProviderServer) -> None:
    server.reply(stall(STALL))
    failure = classify(raised_by(chat(azure_client(server, timeout=STALL_TIMEOUT))))
    assert failure is not None and (failure.provider, failure.reason) == ("azure_openai", "timeout")


def test_dropped_connection_is_connection(server: ProviderServer) -> None:
    server.reply(hang_up())
    failure = classify(raised_by(chat(azure_client(server))))
    assert failure is not None and (failure.provider, failure.reason) == ("azure_openai", "connection")
