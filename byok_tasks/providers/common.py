"""The vocabulary every LLM API shares, read after the provider's own table.

OpenAI's error shape became the lingua franca: OpenAI-compatible providers, gateways and
wrapper libraries reuse its codes and types, and Anthropic's types turn up wherever Claude
is served (Vertex, Bedrock, gateways). A body is read by its shape, whichever host served
it, so these apply to every provider, known or not.

``GENERIC_CODES`` name a class of error, not its cause (``server_error``,
``invalid_request_error``, gRPC's ``PERMISSION_DENIED``): an HTTP status says as much or more, so the classifier reads
them only when there is no status (a 200 stream) — see :mod:`byok_tasks.classification`.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..names import Reason

__all__ = ["CLASS_CODES", "CODES", "GENERIC_CODES", "MESSAGES"]

# Exception classes of wrapper libraries whose name is the cause, read like a code
# (LiteLLM raises these with a plain 400 or 429 status).
CLASS_CODES: Mapping[str, Reason] = {
    "ContextWindowExceededError": "context_length",
    "ContentPolicyViolationError": "content_filter",
    "BudgetExceededError": "quota",
}

CODES: Mapping[str, Reason] = {
    **CLASS_CODES,
    # invalid_key
    "invalid_api_key": "invalid_key",
    "wrong_api_key": "invalid_key",
    "invalid_authentication_error": "invalid_key",
    "authentication_error": "invalid_key",
    "auth_error": "invalid_key",
    "unauthorized": "invalid_key",
    "UNAUTHENTICATED": "invalid_key",
    # permission
    "permission_error": "permission",
    "permission_denied": "permission",
    "unsupported_country_region_territory": "permission",
    "account_deactivated": "permission",
    "access_terminated": "permission",
    # quota: an allowance or a balance, exhausted until someone pays or raises it
    "insufficient_quota": "quota",
    "billing_hard_limit_reached": "quota",
    "credit_balance_exhausted": "quota",
    "organization_spend_limit_exceeded": "quota",
    "project_spend_limit_exceeded": "quota",
    "organization_usage_limit_exceeded": "quota",
    "billing_error": "quota",
    "budget_exceeded": "quota",
    "credit_limit": "quota",
    "insufficient_balance": "quota",
    "exceeded_current_quota_error": "quota",
    "payment_required": "quota",
    "billing_not_active": "quota",
    # rate_limit
    "rate_limit_exceeded": "rate_limit",
    "rate_limit_error": "rate_limit",
    "rate_limited": "rate_limit",
    "too_many_requests": "rate_limit",
    "too_many_requests_error": "rate_limit",
    "throttling_error": "rate_limit",
    "token_limit_exceeded": "rate_limit",
    # model_not_found
    "model_not_found": "model_not_found",
    "model_not_available": "model_not_found",
    "invalid_model": "model_not_found",
    "unknown_model": "model_not_found",
    "model_decommissioned": "model_not_found",
    "not_found_error": "model_not_found",
    "DeploymentNotFound": "model_not_found",
    # context_length
    "context_length_exceeded": "context_length",
    "string_above_max_length": "context_length",
    "request_too_large": "context_length",
    # content_filter
    "content_filter": "content_filter",
    "contentFilter": "content_filter",
    "content_policy_violation": "content_filter",
    "moderation_blocked": "content_filter",
    "invalid_prompt": "content_filter",
    "ResponsibleAIPolicyViolation": "content_filter",
    "data_inspection_failed": "content_filter",
    # overloaded, timeout
    "overloaded_error": "overloaded",
    "engine_overloaded": "overloaded",
    "capacity_exceeded": "overloaded",
    "service_unavailable": "overloaded",
    "UNAVAILABLE": "overloaded",
    "timeout_error": "timeout",
    "DEADLINE_EXCEEDED": "timeout",
    # generic classes: see GENERIC_CODES
    "server_error": "server_error",
    "internal_server_error": "server_error",
    "internal_error": "server_error",
    "api_error": "server_error",
    "INTERNAL": "server_error",
    "invalid_request_error": "bad_request",
    "invalid_request": "bad_request",
    "bad_request": "bad_request",
    "invalid_parameter_error": "bad_request",
    "unsupported_parameter": "bad_request",
    "unsupported_value": "bad_request",
    "INVALID_ARGUMENT": "bad_request",
    "PERMISSION_DENIED": "permission",
    "NOT_FOUND": "model_not_found",
}

GENERIC_CODES = frozenset(
    {
        "server_error",
        "internal_server_error",
        "internal_error",
        "api_error",
        "INTERNAL",
        "UNKNOWN",
        "invalid_request_error",
        "invalid_request",
        "bad_request",
        "invalid_parameter_error",
        "unsupported_parameter",
        "unsupported_value",
        "INVALID_ARGUMENT",
        "FAILED_PRECONDITION",
        # google.rpc codes that only restate the HTTP status.
        "PERMISSION_DENIED",
        "NOT_FOUND",
        "unknown_error",
        "error",
    }
)

# Lowercase fragments, checked in this order: a balance or a budget before a rate limit,
# because both come as a 429. Each is a wording more than one provider uses.
MESSAGES: tuple[tuple[str, Reason], ...] = (
    ("exceeded your current quota", "quota"),
    ("insufficient balance", "quota"),
    ("insufficient credits", "quota"),
    ("requires more credits", "quota"),
    ("credit balance", "quota"),
    ("credit limit", "quota"),
    ("billing hard limit", "quota"),
    ("billing details", "quota"),
    ("spend limit", "quota"),
    ("spending limit", "quota"),
    ("usage limit", "quota"),
    ("budget has been exceeded", "quota"),
    ("exceeded budget", "quota"),
    ("budget exceeded", "quota"),
    ("budget limit", "quota"),
    ("over budget", "quota"),
    ("context length", "context_length"),
    ("context size", "context_length"),
    ("context window", "context_length"),
    ("exceed context limit", "context_length"),
    ("exceeds the context limit", "context_length"),
    ("maximum input length", "context_length"),
    ("input too long", "context_length"),
    ("expected maxlength", "context_length"),
    ("prompt is too long", "context_length"),
    ("input is too long", "context_length"),
    ("input token count", "context_length"),
    ("exceeds the maximum number of tokens", "context_length"),
    ("maximum prompt length", "context_length"),
    ("reduce the length of the messages", "context_length"),
    ("string too long", "context_length"),
    ("too large for model", "context_length"),
    ("range of input length", "context_length"),
    ("`max_new_tokens` must be", "context_length"),
    ("safety system", "content_filter"),
    ("content management policy", "content_filter"),
    ("content filtering policy", "content_filter"),
    ("inappropriate content", "content_filter"),
    ("content policy", "content_filter"),
    ("usage policy", "content_filter"),
    ("flagged by moderation", "content_filter"),
    ("organization must be verified", "permission"),
    ("territory not supported", "permission"),
    ("incorrect api key", "invalid_key"),
    ("invalid api key", "invalid_key"),
    ("api key not valid", "invalid_key"),
    ("authentication fails", "invalid_key"),
    ("model not found", "model_not_found"),
    ("model not exist", "model_not_found"),
    ("invalid model", "model_not_found"),
    ("over capacity", "overloaded"),
    ("overloaded", "overloaded"),
)
