"""OpenRouter (openrouter.ai), reached through the OpenAI SDK.

Its ``error.code`` is the HTTP status, so the status carries the meaning:
https://openrouter.ai/docs/api-reference/errors — 402 is credits, 403 is moderation.
An error the upstream provider returned comes as "Provider returned error" with the
provider's own body in ``error.metadata.raw`` and its name in ``provider_name``; the
classifier reads the raw body, and names the upstream provider only when
``metadata.is_byok`` says the key was the user's own one for it (otherwise the call ran
on OpenRouter's key and credits: an OpenRouter failure).
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
        ("no endpoints found", "model_not_found"),
    ),
)
