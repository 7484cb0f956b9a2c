"""Cohere (api.cohere.com, api.cohere.ai): statuses and a message, no error codes.

https://docs.cohere.com/reference/errors. 498 is Cohere's "invalid token".
"""

from __future__ import annotations

from .table import ProviderTable

TABLE = ProviderTable(
    name="cohere",
    hosts=frozenset({"api.cohere.com", "api.cohere.ai"}),
    sdk_modules=("cohere",),
    statuses={498: "invalid_key"},
    messages=(("too many tokens", "context_length"),),
)
