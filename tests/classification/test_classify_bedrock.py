"""Amazon Bedrock, through botocore's bedrock-runtime client (Converse).

The client speaks to the real regional endpoint through the loopback provider as its
HTTP proxy, so botocore's transport errors still name bedrock-runtime.us-east-1.amazonaws.com.
Error codes travel in the ``x-amzn-ErrorType`` header, as Bedrock sends them; the shapes
are the bedrock-runtime service model's (botocore/data/bedrock-runtime) and
https://docs.aws.amazon.com/bedrock/latest/userguide/troubleshooting-api-error-codes.html
"""

from __future__ import annotations

from botocore.exceptions import ClientError

from byok_tasks import classify, llm_call
from byok_tasks.providers import by_host
from byok_tasks.testing.provider_server import ProviderServer, closed_port_url, json_reply, stall
from tests.support.clients import STALL, STALL_TIMEOUT, bedrock_client, bedrock_converse, raised_by
from tests.support.fixtures import loopback_only_fixture, provider_server_fixture, server_fixture  # noqa: F401


def bedrock_failure(server: ProviderServer, status: int, code: str, message: str):  # type: ignore[no-untyped-def]
    error_type = f"{code}:http://internal.amazon.com/coral/com.amazon.bedrock/"
    server.reply(
        json_reply(
            status, {"message": message}, headers={"x-amzn-ErrorType": error_type, "x-amzn-RequestId": "ca47a5ce"}
        )
    )
    failure = classify(raised_by(bedrock_converse(bedrock_client(server.url))))
    assert failure is not None
    assert failure.provider == "bedrock"
    assert failure.code == code
    return failure


def test_throttling_is_rate_limit(server: ProviderServer) -> None:
    # Message: https://github.com/2FastLabs/agent-squad/issues/47; headers: https://github.com/aws-samples/amazon-bedrock-client-for-mac/issues/99
    failure = bedrock_failure(
        server,
        429,
        "ThrottlingException",
        "Too many requests, please wait before trying again. You have sent too many requests. "
        "Wait before trying again.",
    )
    assert (failure.reason, failure.retryable, failure.request_id) == ("rate_limit", True, "ca47a5ce")


def test_bedrock_tokens_per_day_throttling_is_quota(server: ProviderServer) -> None:
    # Message: https://github.com/minorun365/agent-book/issues/29 — same exception, daily window.
    failure = bedrock_failure(
        server, 429, "ThrottlingException", "Too many tokens per day, please wait before trying again."
    )
    assert (failure.reason, failure.retryable) == ("quota", False)


def test_service_quota_exceeded_is_quota(server: ProviderServer) -> None:
    # ServiceQuotaExceededException (400) in the bedrock-runtime service model; message from its documentation.
    failure = bedrock_failure(
        server, 400, "ServiceQuotaExceededException", "Your request exceeds the service quota for your account."
    )
    assert failure.reason == "quota"


def test_no_access_to_model_is_permission(server: ProviderServer) -> None:
    # Message: https://github.com/andrewyng/aisuite/issues/174
    failure = bedrock_failure(
        server, 403, "AccessDeniedException", "You don't have access to the model with the specified model ID."
    )
    assert failure.reason == "permission"


def test_invalid_security_token_is_invalid_key(server: ProviderServer) -> None:
    # Message: https://github.com/langchain-ai/langchain/issues/19677
    failure = bedrock_failure(
        server, 403, "UnrecognizedClientException", "The security token included in the request is invalid."
    )
    assert failure.reason == "invalid_key"


def test_invalid_model_identifier_is_model_not_found(server: ProviderServer) -> None:
    # Message: https://github.com/strands-agents/harness-sdk/issues/38
    failure = bedrock_failure(server, 400, "ValidationException", "The provided model identifier is invalid.")
    assert failure.reason == "model_not_found"


def test_input_too_long_is_context_length(server: ProviderServer) -> None:
    # Message: https://github.com/continuedev/continue/issues/9592
    failure = bedrock_failure(
        server,
        400,
        "ValidationException",
        "The model returned the following errors: Input is too long for requested model.",
    )
    assert failure.reason == "context_length"


def test_other_validation_error_is_bad_request(server: ProviderServer) -> None:
    # Message: https://github.com/strands-agents/harness-sdk/issues/38
    failure = bedrock_failure(
        server,
        400,
        "ValidationException",
        "Invocation of model ID amazon.nova-pro-v1:0 with on-demand throughput isn't supported.",
    )
    assert failure.reason == "bad_request"


def test_model_not_ready_is_overloaded(server: ProviderServer) -> None:
    # ModelNotReadyException (429) in the bedrock-runtime service model; message from its documentation.
    failure = bedrock_failure(
        server,
        429,
        "ModelNotReadyException",
        "The model specified in the request is not ready to serve inference requests.",
    )
    assert (failure.reason, failure.retryable) == ("overloaded", True)


def test_service_unavailable_is_overloaded(server: ProviderServer) -> None:
    # Message: https://github.com/darko-mesaros/bedrust/issues/47
    failure = bedrock_failure(server, 503, "ServiceUnavailableException", "Bedrock is unable to process your request.")
    assert failure.reason == "overloaded"


def test_model_timeout_is_timeout(server: ProviderServer) -> None:
    # ModelTimeoutException (408) in the bedrock-runtime service model; message from its documentation.
    failure = bedrock_failure(
        server,
        408,
        "ModelTimeoutException",
        "The request took too long to process. Processing time exceeded the model timeout length.",
    )
    assert (failure.reason, failure.retryable) == ("timeout", True)


def test_model_error_is_server_error(server: ProviderServer) -> None:
    # ModelErrorException (424) in the bedrock-runtime service model; message from its documentation.
    failure = bedrock_failure(
        server, 424, "ModelErrorException", "The request failed due to an error while processing the model."
    )
    assert failure.reason == "server_error"


def test_internal_server_exception_is_server_error(server: ProviderServer) -> None:
    # InternalServerException (500) in the bedrock-runtime service model; message reconstructed.
    failure = bedrock_failure(server, 500, "InternalServerException", "An internal server error occurred.")
    assert failure.reason == "server_error"


def test_read_timeout_is_timeout(server: ProviderServer) -> None:
    server.reply(stall(STALL))
    failure = classify(raised_by(bedrock_converse(bedrock_client(server.url, timeout=STALL_TIMEOUT))))
    assert failure is not None and (failure.provider, failure.reason) == ("bedrock", "timeout")
    assert failure.error_type == "botocore.exceptions.ReadTimeoutError"


def test_refused_connection_inside_llm_call_is_bedrock_connection() -> None:
    # Through a proxy, botocore reports a dropped connection as the proxy's; so this one talks
    # to a closed port directly, and the caller's llm_call names the provider.
    client = bedrock_client("", endpoint_url=closed_port_url())

    def converse() -> object:
        with llm_call("bedrock", model="anthropic.claude-3-5-sonnet-20240620-v1:0"):
            return bedrock_converse(client)()

    failure = classify(raised_by(converse))
    assert failure is not None and (failure.provider, failure.reason) == ("bedrock", "connection")
    assert failure.error_type == "botocore.exceptions.EndpointConnectionError"


def test_any_region_s_runtime_host_is_bedrock() -> None:
    table = by_host("bedrock-runtime.eu-west-3.amazonaws.com")
    assert table is not None and table.name == "bedrock"


def test_other_aws_services_errors_are_not_bedrock() -> None:
    # botocore raises the same ClientError for S3; only Bedrock runtime operations are Bedrock.
    error = ClientError(
        {
            "Error": {"Code": "NoSuchKey", "Message": "The specified key does not exist."},
            "ResponseMetadata": {"HTTPStatusCode": 404},
        },
        "GetObject",
    )
    failure = classify(error)
    assert failure is not None and failure.provider == "unknown"
