"""OpenRouter (openrouter.ai), reached through the OpenAI SDK.

Its ``error.code`` is the HTTP status, so the status carries the meaning:
https://openrouter.ai/docs/api-reference/errors — 402 is credits, 403 is moderation.
"""

from __future__ import annotations

from .table import ProviderTable

TABLE = ProviderTable(
    name="openrouter",
    hosts=frozenset({"openrouter.ai"}),
    statuses={402: "quota", 403: "content_filter", 408: "timeout", 502: "server_error", 503: "overloaded"},
    messages=(
        ("insufficient credits", "quota"),
        ("requires more credits", "quota"),
        ("maximum context length", "context_length"),
        ("no endpoints found", "model_not_found"),
    ),
)
