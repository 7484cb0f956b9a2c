"""Perplexity (api.perplexity.ai), OpenAI-compatible. Its edge answers a bad key with an HTML 401.

https://docs.perplexity.ai/guides/model-cards, https://docs.perplexity.ai/guides/rate-limits
"""

from __future__ import annotations

from .table import ProviderTable

TABLE = ProviderTable(name="perplexity", hosts=frozenset({"api.perplexity.ai"}))
