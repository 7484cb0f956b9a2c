"""Fireworks AI (api.fireworks.ai), OpenAI-compatible; bodies carry a ``type`` and a message, no code.

https://docs.fireworks.ai/troubleshooting/status_error_codes/http_codes: 412 is an account
suspended for billing (no payment method, credits used up).
"""

from __future__ import annotations

from .table import ProviderTable

TABLE = ProviderTable(
    name="fireworks",
    hosts=frozenset({"api.fireworks.ai"}),
    statuses={412: "quota"},
    messages=(("api key you provided is invalid", "invalid_key"),),
)
