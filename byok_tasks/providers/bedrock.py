"""Amazon Bedrock (``bedrock-runtime.<region>.amazonaws.com``): botocore's ``Error.Code``.

Exception names from the bedrock-runtime service model that botocore ships and
https://docs.aws.amazon.com/bedrock/latest/userguide/troubleshooting-api-error-codes.html.
Stream events spell them with a lowercase initial (the table reads both). ``ValidationException`` covers both
an over-long prompt and an unknown model id, so its message decides.
"""

from __future__ import annotations

import re

from .table import ProviderTable

TABLE = ProviderTable(
    name="bedrock",
    host_pattern=re.compile(r"bedrock-runtime(-fips)?\.[a-z0-9-]+\.amazonaws\.com"),
    sdk_modules=("botocore", "boto3"),
    sdk_operations=frozenset(
        {
            "Converse",
            "ConverseStream",
            "InvokeModel",
            "InvokeModelWithResponseStream",
            "InvokeModelWithBidirectionalStream",
            "CountTokens",
            "ApplyGuardrail",
            "StartAsyncInvoke",
        }
    ),
    codes={
        "UnrecognizedClientException": "invalid_key",
        "InvalidSignatureException": "invalid_key",
        "ExpiredTokenException": "invalid_key",
        "AccessDeniedException": "permission",
        "ServiceQuotaExceededException": "quota",
        "ThrottlingException": "rate_limit",
        "ResourceNotFoundException": "model_not_found",
        "ModelTimeoutException": "timeout",
        "ModelNotReadyException": "overloaded",
        "ServiceUnavailableException": "overloaded",
        "ModelErrorException": "server_error",
        "ModelStreamErrorException": "server_error",
        "InternalServerException": "server_error",
    },
    messages=(
        ("input is too long", "context_length"),
        ("prompt is too long", "context_length"),
        ("model identifier is invalid", "model_not_found"),
    ),
)
