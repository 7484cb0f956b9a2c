"""DeepSeek (api.deepseek.com), reached through the OpenAI SDK.

https://api-docs.deepseek.com/quick_start/error_codes: its ``code`` is usually the generic
``invalid_request_error``, so the status decides — 402 is an exhausted balance — and the
message where the status is a plain 400.
"""

from __future__ import annotations

from .table import ProviderTable

TABLE = ProviderTable(
    name="deepseek",
    hosts=frozenset({"api.deepseek.com"}),
    statuses={402: "quota", 422: "bad_request"},
)
