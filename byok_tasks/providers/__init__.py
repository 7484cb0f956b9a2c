"""What each LLM provider's failures look like: one table per provider, one module each.

A table says how to recognise the provider (request hosts, the SDK's module) and how
its structured error fields map to a reason. Classification reads the fields in the
same order for every provider (see :mod:`byok_tasks.classification`): Google quota ids, then
``codes``, then ``messages`` (the few text fallbacks no structured field replaces),
then ``statuses`` over :data:`DEFAULT_STATUSES`.
"""

from __future__ import annotations

from functools import lru_cache

from . import anthropic, azure_openai, bedrock, cohere, google, groq, mistral, openai, openrouter, xai
from .table import DEFAULT_STATUSES, ProviderTable

__all__ = ["DEFAULT_STATUSES", "PROVIDERS", "UNKNOWN", "ProviderTable", "by_host", "by_module", "by_name"]

PROVIDERS: tuple[ProviderTable, ...] = (
    openai.TABLE,
    azure_openai.TABLE,
    anthropic.TABLE,
    google.TABLE,
    openrouter.TABLE,
    groq.TABLE,
    mistral.TABLE,
    cohere.TABLE,
    bedrock.TABLE,
    xai.TABLE,
)

# Errors from a provider nobody named still get the reading any LLM API would get.
UNKNOWN = ProviderTable(name="unknown")

_BY_NAME = {table.name: table for table in PROVIDERS}
_BY_HOST = {host: table for table in PROVIDERS for host in table.hosts}
_HOST_PATTERNS = tuple(table for table in PROVIDERS if table.host_pattern is not None)


def by_name(name: str) -> ProviderTable:
    """The table for ``name``; a provider without one is read like any LLM API."""
    return _BY_NAME.get(name) or ProviderTable(name=name)


@lru_cache(maxsize=256)
def by_host(host: str) -> ProviderTable | None:
    """The provider serving requests to ``host``, if it is one of ours."""
    host = host.lower().rstrip(".")
    table = _BY_HOST.get(host)
    if table is not None:
        return table
    for candidate in _HOST_PATTERNS:
        if candidate.host_pattern is not None and candidate.host_pattern.fullmatch(host):
            return candidate
    return None


@lru_cache(maxsize=256)
def by_module(module: str, operation: str | None) -> ProviderTable | None:
    """The provider whose SDK raised an exception defined in ``module``."""
    for table in PROVIDERS:
        for prefix in table.sdk_modules:
            in_sdk = module == prefix or module.startswith(prefix + ".")
            if in_sdk and (table.sdk_operations is None or operation in table.sdk_operations):
                return table
    return None
