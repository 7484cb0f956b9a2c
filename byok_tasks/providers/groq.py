"""Groq (api.groq.com), through the groq SDK or its OpenAI-compatible endpoint.

OpenAI-style bodies: https://console.groq.com/docs/errors. 498 is Groq's "flex tier
capacity exceeded". Its per-day token limit shares the ``rate_limit_exceeded`` code
with the per-minute one; the classifier's long-window rule tells them apart.
"""

from __future__ import annotations

from .table import ProviderTable

TABLE = ProviderTable(
    name="groq",
    hosts=frozenset({"api.groq.com"}),
    sdk_modules=("groq",),
    codes={
        "invalid_api_key": "invalid_key",
        "organization_restricted": "permission",
        "model_not_found": "model_not_found",
        "model_decommissioned": "model_not_found",
        "context_length_exceeded": "context_length",
        "rate_limit_exceeded": "rate_limit",
        "capacity_exceeded": "overloaded",
    },
    statuses={498: "overloaded"},
)
