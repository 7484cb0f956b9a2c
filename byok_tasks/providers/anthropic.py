"""Anthropic (api.anthropic.com): ``error.details.error_code``, then ``error.type``.

Types from https://docs.anthropic.com/en/api/errors; the ``error_code`` values are the
ones the anthropic SDK models (``anthropic/types/shared/*_error_details.py``).
Anthropic reports an exhausted balance and a spend cap as a plain 400
``invalid_request_error``: only the message tells them from a malformed request.
"""

from __future__ import annotations

from .table import ProviderTable

TABLE = ProviderTable(
    name="anthropic",
    hosts=frozenset({"api.anthropic.com"}),
    sdk_modules=("anthropic",),
    codes={
        "enforced_spend_limit_reached": "quota",
        "contract_spend_limit_reached": "quota",
        "linked_organization_spend_limit_reached": "quota",
        "linked_organization_billing_unavailable": "quota",
        "organization_on_hold": "permission",
        "ramp_limit_exceeded": "rate_limit",
        "authentication_error": "invalid_key",
        "permission_error": "permission",
        "billing_error": "quota",
        "not_found_error": "model_not_found",
        "request_too_large": "context_length",
        "rate_limit_error": "rate_limit",
        "timeout_error": "timeout",
        "api_error": "server_error",
        "overloaded_error": "overloaded",
    },
    messages=(
        ("credit balance is too low", "quota"),
        ("reached your specified api usage limits", "quota"),
        ("prompt is too long", "context_length"),
        ("output blocked by content filtering policy", "content_filter"),
    ),
)
