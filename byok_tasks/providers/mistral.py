"""Mistral (api.mistral.ai): the body's ``type`` and ``code``.

https://docs.mistral.ai/resources/error-glossary. The mistralai SDK keeps the body as
text; the classifier parses it.
"""

from __future__ import annotations

from .table import ProviderTable

TABLE = ProviderTable(
    name="mistral",
    hosts=frozenset({"api.mistral.ai"}),
    sdk_modules=("mistralai",),
    codes={
        "authentication_error": "invalid_key",
        "rate_limited": "rate_limit",
        "rate_limit_error": "rate_limit",
        "1300": "rate_limit",
        "invalid_model": "model_not_found",
        "unknown_model": "model_not_found",
        "1500": "model_not_found",
        "server_error": "server_error",
    },
    messages=(
        ("too large for model with", "context_length"),
        ("capacity exceeded", "overloaded"),
    ),
)
