"""The user's key inside the task, without it ever travelling with the task.

Two ways for a key to reach the worker, one call to get it (:func:`current_key`):

- **Resolver**: the application already stores users' keys (its database, a vault).
  ``resolve(uid, provider)`` is called lazily, the first time a task asks, and its answer
  is kept in a small per-process cache for ``ttl`` seconds.
- **Sealed handoff**: keys arrive with each web request and are stored nowhere. When a
  task is published under ``byok_context(uid, keys={...})``, the keys are encrypted with
  AES-256-GCM (bound to the uid and a random reference) and stored in Redis under that
  reference with a TTL; only the reference travels in the task header. The worker fetches
  and decrypts them on first use. Retries, chain steps and tasks sent from the task pass
  the same reference on, so all of them must start within the TTL; a task scheduled
  further ahead is refused when it is sent.

Neither way falls back to the platform's key: a provider the context names as BYOK either
yields the user's key or raises :class:`ByokKeyUnavailable`.
"""

from __future__ import annotations

from . import settings
from ._exceptions import ByokKeyExpired, ByokKeyUnavailable
from .context import current_context
from .keyring import ENCRYPTION_KEY_ENV, Keyring, Resolver, SealedKeyStore, generate_encryption_key
from .providers import provider_name
from .redaction import remember_key

__all__ = [
    "ENCRYPTION_KEY_ENV",
    "ByokKeyExpired",
    "ByokKeyUnavailable",
    "Keyring",
    "Resolver",
    "SealedKeyStore",
    "configure",
    "current_key",
    "generate_encryption_key",
]

# Where keys come from is set by install() (settings.configure); this is the same, alone.
configure = settings.configure_keys


def describe_sources() -> str:
    """Where this process's keys come from, for the worker's start-up line; no secret in it."""
    sources = []
    store, resolver = settings.current().key_store, settings.current().resolver
    if store is not None:
        sources.append(f"sealed handoff ({store!r})")
    if resolver is not None:
        sources.append(f"resolver (cached {resolver.ttl:g} s, {resolver.size} pairs)")
    return " and ".join(sources) or "nowhere (current_key() raises ByokKeyUnavailable for a BYOK provider)"


def key_store() -> SealedKeyStore | None:
    return settings.current().key_store


def current_key(provider: str) -> str | None:
    """The current user's own key for ``provider``, or None when the context does not make ``provider`` BYOK.

    None means: use the platform's key (failures then count as ``platform``). Raises
    :class:`ByokKeyUnavailable` (or :class:`ByokKeyExpired`) when the provider is BYOK but
    the key cannot be had, so that a task never quietly spends the platform's key instead.
    """
    # As byok_context() refuses it: a name no context can hold would answer None, and
    # ``current_key("OpenAI") or platform_key`` would spend the platform's key.
    provider_name(provider)
    context = current_context()
    if context is None or not context.uses_own_key(provider):
        return None
    sources = settings.current()
    resolver = sources.resolver
    key = context.keyring.get(context.uid, provider, sources.key_store) if context.keyring is not None else None
    if key is None and resolver is not None:
        key = resolver.get(context.uid, provider)
        if isinstance(key, str):
            # On every answer, cached ones too: a key in use stays among the fingerprints kept.
            remember_key(key)
    if key is None:
        keys = "the context's keys do not include it" if context.keyring is not None else "the context carries no keys"
        resolver_said = "the resolver returned none" if resolver is not None else "no resolver is configured"
        raise ByokKeyUnavailable(
            f"user {context.uid!r} uses their own {provider} key, but it cannot be found: {keys} and {resolver_said}",
            uid=context.uid,
            provider=provider,
        )
    if sources.key_check is not None:
        sources.key_check(context.uid, provider, key)  # raises ByokKeyRejected for a key known dead
    return key
