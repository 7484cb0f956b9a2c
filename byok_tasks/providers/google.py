"""Google Gemini API and Vertex AI: ``google.rpc`` status, ``ErrorInfo.reason``, ``QuotaFailure``.

https://ai.google.dev/gemini-api/docs/troubleshooting and
https://cloud.google.com/apis/design/errors. Every 429 says "You exceeded your current
quota", per-minute limit or not; the ``QuotaFailure`` quota ids say which window was hit.
"""

from __future__ import annotations

import re

from .table import ProviderTable

TABLE = ProviderTable(
    name="google",
    hosts=frozenset({"generativelanguage.googleapis.com", "aiplatform.googleapis.com"}),
    host_pattern=re.compile(r"[a-z0-9-]+-aiplatform\.googleapis\.com"),
    sdk_modules=("google.genai", "google.generativeai", "vertexai"),
    codes={
        # ErrorInfo.reason
        "API_KEY_INVALID": "invalid_key",
        # A suspended key is dead for good: the user has to make a new one.
        "CONSUMER_SUSPENDED": "invalid_key",
        "SERVICE_DISABLED": "permission",
        "RATE_LIMIT_EXCEEDED": "rate_limit",
        # google.rpc.Code names
        "UNAUTHENTICATED": "invalid_key",
        "RESOURCE_EXHAUSTED": "rate_limit",
        "NOT_FOUND": "model_not_found",
        "DEADLINE_EXCEEDED": "timeout",
        "UNAVAILABLE": "overloaded",
        "INTERNAL": "server_error",
    },
    # Checked in this order against every violated quota id: a daily limit among the
    # violations will not clear within the minute even if a per-minute one would.
    quota_ids=(("PerDay", "quota"), ("PerMonth", "quota"), ("PerMinute", "rate_limit")),
    messages=(
        ("api key not valid", "invalid_key"),
        ("reported as leaked", "invalid_key"),
        ("location is not supported", "permission"),
        ("exceeds the maximum number of tokens", "context_length"),
    ),
)
