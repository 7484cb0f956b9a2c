"""Cerebras (api.cerebras.ai), OpenAI-compatible with its body at the top level, not under ``error``.

https://inference-docs.cerebras.ai/support/error. Its per-minute and per-day limits are both
"quota exceeded" codes on a 429; the per-minute one clears by waiting.
"""

from __future__ import annotations

from .table import ProviderTable

TABLE = ProviderTable(
    name="cerebras",
    hosts=frozenset({"api.cerebras.ai"}),
    codes={"request_quota_exceeded": "rate_limit", "token_quota_exceeded": "rate_limit"},
)
