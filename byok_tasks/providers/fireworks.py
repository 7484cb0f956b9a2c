"""Fireworks AI (api.fireworks.ai), OpenAI-compatible; bodies carry a ``type`` and a message, no code.

https://docs.fireworks.ai/troubleshooting/status_error_codes/http_codes
"""

from __future__ import annotations

from .table import ProviderTable

TABLE = ProviderTable(
    name="fireworks",
    hosts=frozenset({"api.fireworks.ai"}),
    messages=(("api key you provided is invalid", "invalid_key"),),
)
