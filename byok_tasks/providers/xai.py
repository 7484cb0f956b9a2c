"""xAI (api.x.ai), reached through the OpenAI SDK.

xAI's bodies carry no machine code: a bare JSON string, or ``{"code": <gRPC status
text>, "error": <message>}``. It answers a bad key with 400 and exhausted credits with
403 or 429, so the message has to decide those.
"""

from __future__ import annotations

from .table import ProviderTable

TABLE = ProviderTable(
    name="xai",
    hosts=frozenset({"api.x.ai"}),
    messages=(
        ("incorrect api key", "invalid_key"),
        ("credits", "quota"),
        ("spending limit", "quota"),
        ("does not exist or your team", "model_not_found"),
    ),
)
