"""OpenAI (api.openai.com): the body's ``error.code``, then ``error.type``.

Codes from https://platform.openai.com/docs/guides/error-codes and the bodies users
report (see tests/classification/test_classify_openai.py for one per code).
"""

from __future__ import annotations

from .table import ProviderTable

TABLE = ProviderTable(
    name="openai",
    hosts=frozenset({"api.openai.com"}),
    sdk_modules=("openai",),
    codes={
        "invalid_api_key": "invalid_key",
        "insufficient_quota": "quota",
        "rate_limit_exceeded": "rate_limit",
        "model_not_found": "model_not_found",
        "context_length_exceeded": "context_length",
        "content_policy_violation": "content_filter",
        "invalid_prompt": "content_filter",
        "unsupported_country_region_territory": "permission",
        "server_error": "server_error",
    },
    # Old bodies without a code still say this for an exhausted balance; OpenAI's
    # per-minute limits say "Rate limit reached" instead.
    messages=(("exceeded your current quota", "quota"),),
)
