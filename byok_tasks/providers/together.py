"""Together AI (api.together.xyz, api.together.ai), OpenAI-compatible.

https://docs.together.ai/docs/error-codes. Its context-length message is the text-generation-inference one.
"""

from __future__ import annotations

from .table import ProviderTable

TABLE = ProviderTable(
    name="together",
    hosts=frozenset({"api.together.xyz", "api.together.ai"}),
    messages=(("unable to access model", "model_not_found"),),
)
