"""The vocabulary every layer shares: whose key (``Source``), why (``Reason``), and what a provider's name may be.

A leaf: it imports nothing of byok-tasks, so that the provider tables, pure data, and
the modules above them can all use it.
"""

from __future__ import annotations

import re
from typing import Literal

__all__ = [
    "MAX_PROVIDERS",
    "RETRYABLE_REASONS",
    "Reason",
    "Source",
    "is_provider_name",
    "well_formed_provider",
    "well_formed_providers",
]

Source = Literal["byok", "platform"]
Reason = Literal[
    "invalid_key",
    "permission",
    "quota",
    "rate_limit",
    "model_not_found",
    "context_length",
    "content_filter",
    "bad_request",
    "timeout",
    "connection",
    "overloaded",
    "server_error",
    "key_unavailable",
    "unknown",
]

# Failures that can clear by themselves, so retrying later is worth it. The rest need a
# person to act: a new key, credits, a shorter prompt, a different model.
RETRYABLE_REASONS: frozenset[Reason] = frozenset({"rate_limit", "overloaded", "server_error", "timeout", "connection"})

# Bounds that keep the header small and make a hostile value fail on the web side,
# where the caller sees the error, rather than in a worker.
MAX_PROVIDERS = 16
_PROVIDER_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,31}")


def is_provider_name(name: object) -> bool:
    return isinstance(name, str) and _PROVIDER_NAME.fullmatch(name) is not None


def well_formed_provider(name: object) -> str:
    """``name`` if it is a well-formed provider name (up to 32 of ``a-z0-9_.-``), else ValueError."""
    if not is_provider_name(name):
        # Not quoted: a key passed where a provider name belongs must not land in an error.
        raise ValueError("invalid provider name: up to 32 lowercase letters, digits, '_', '.', '-' (like 'openai')")
    return name  # type: ignore[return-value]


def well_formed_providers(providers: object) -> frozenset[str]:
    """A collection of provider names as a frozenset, each well formed and at most :data:`MAX_PROVIDERS`."""
    if isinstance(providers, (str, bytes)):
        raise TypeError("providers must be a collection of provider names, not a single string")
    result = providers if isinstance(providers, frozenset) else frozenset(providers)  # type: ignore[call-overload]
    if result in _checked:
        return result
    if len(result) > MAX_PROVIDERS:
        raise ValueError(f"at most {MAX_PROVIDERS} providers")
    for name in result:
        well_formed_provider(name)
    if len(_checked) >= _CHECKED_SIZE:
        _checked.clear()
    _checked.add(result)
    return result


# The provider sets already checked: a worker sees the same few on every task. Bounded by
# starting afresh when full; a set is only added once every name in it passed.
_checked: set[frozenset[str]] = set()
_CHECKED_SIZE = 256
