"""The user's key inside the task, without it ever travelling with the task.

Two ways for a key to reach the worker, one call to get it (:func:`current_key`):

- **Resolver**: the application already stores users' keys (its database, a vault).
  ``resolve(uid, provider)`` is called lazily, the first time a task asks, and its answer
  is kept in a small per-process cache for ``ttl`` seconds.
- **Sealed handoff**: keys arrive with each web request and are stored nowhere. When a
  task is published under ``byok_context(uid, keys={...})``, the keys are encrypted with
  AES-256-GCM (bound to the uid and a random reference) and stored in Redis under that
  reference with a TTL; only the reference travels in the task header. The worker fetches
  and decrypts them on first use.

Neither way falls back to the platform's key: a provider the context names as BYOK either
yields the user's key or raises :class:`ByokKeyUnavailable`.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .context import current_context

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

ENCRYPTION_KEY_ENV = "BYOK_TASKS_ENCRYPTION_KEY"
Resolver = Callable[[str, str], "str | None"]
_REF = re.compile(r"[A-Za-z0-9_-]{16,64}")


class ByokKeyUnavailable(RuntimeError):
    """A provider is BYOK for this context, but the user's key cannot be had. Never a silent fallback."""


class ByokKeyExpired(ByokKeyUnavailable):
    """The sealed keys a task refers to are gone: their TTL passed, or they were never stored."""


def is_reference(value: object) -> bool:
    return isinstance(value, str) and _REF.fullmatch(value) is not None


class Keyring:
    """The keys of one context: given in this process, or sealed under :attr:`ref` for workers.

    Its repr names providers and the reference, never a key. Opened sealed keys are kept
    only as long as the context object, which lives for one task.
    """

    __slots__ = ("_keys", "_lock", "ref")

    def __init__(self, keys: Mapping[str, str] | None = None, *, ref: str | None = None) -> None:
        self._keys = dict(keys) if keys is not None else None
        self.ref = ref
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        providers = sorted(self._keys) if self._keys is not None else "sealed"
        return f"Keyring(providers={providers!r}, ref={self.ref!r})"

    def get(self, uid: str, provider: str) -> str | None:
        with self._lock:
            if self._keys is None:
                if self.ref is None:
                    return None
                if _store is None:
                    raise ByokKeyUnavailable(
                        "this task carries sealed keys, but no SealedKeyStore is configured in this process"
                    )
                self._keys = _store.open(self.ref, uid)
            return self._keys.get(provider)

    def seal(self, uid: str, store: SealedKeyStore) -> str:
        """Store the keys (once per context) and return the reference that travels instead of them."""
        with self._lock:
            if self.ref is None:
                if self._keys is None:
                    raise ByokKeyUnavailable("there are no keys to seal")
                self.ref = store.seal(self._keys, uid)
            return self.ref


class SealedKeyStore:
    """Encrypted keys in Redis, under random references, for ``ttl`` seconds.

    ``encryption_key`` (else ``BYOK_TASKS_ENCRYPTION_KEY``) is 32 bytes, base64url, shared
    by web and worker processes; a sequence decrypts with any and encrypts with the first,
    for rotation. Make one with :func:`generate_encryption_key`.
    """

    def __init__(
        self,
        redis_url: str,
        *,
        encryption_key: str | bytes | Sequence[str | bytes] | None = None,
        ttl: float = 3600.0,
        prefix: str = "byok:keys:",
    ) -> None:
        import redis
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        if ttl <= 0:
            raise ValueError("ttl must be positive")
        if encryption_key is None:
            encryption_key = os.environ.get(ENCRYPTION_KEY_ENV) or None
        if encryption_key is None:
            raise ValueError(f"sealed keys need an encryption key (argument or {ENCRYPTION_KEY_ENV})")
        keys = [encryption_key] if isinstance(encryption_key, (str, bytes)) else list(encryption_key)
        self._ciphers = [AESGCM(_key_bytes(key)) for key in keys]
        self._redis: Any = redis.Redis.from_url(redis_url)
        self.ttl = ttl
        self.prefix = prefix

    def __repr__(self) -> str:
        return f"SealedKeyStore(ttl={self.ttl}, prefix={self.prefix!r})"

    def seal(self, keys: Mapping[str, str], uid: str) -> str:
        ref = secrets.token_urlsafe(16)
        nonce = secrets.token_bytes(12)
        sealed = nonce + self._ciphers[0].encrypt(nonce, json.dumps(dict(keys)).encode(), _bound_to(uid, ref))
        self._redis.set(self.prefix + ref, sealed, px=int(self.ttl * 1000))
        return ref

    def open(self, ref: str, uid: str) -> dict[str, str]:
        from cryptography.exceptions import InvalidTag

        sealed = self._redis.get(self.prefix + ref)
        if sealed is None:
            raise ByokKeyExpired(
                f"the keys sealed for user {uid!r} under reference {ref!r} are gone: "
                f"older than their TTL of {self.ttl:g} s, or never stored"
            )
        nonce, ciphertext = sealed[:12], sealed[12:]
        for cipher in self._ciphers:
            try:
                keys = json.loads(cipher.decrypt(nonce, ciphertext, _bound_to(uid, ref)))
            except InvalidTag:
                continue
            return {str(provider): str(key) for provider, key in keys.items()}
        raise ByokKeyUnavailable(
            f"the keys sealed under reference {ref!r} do not open for user {uid!r}: "
            "a different encryption key, or a reference copied from another user"
        )


def _bound_to(uid: str, ref: str) -> bytes:
    # Authenticated with the ciphertext: a blob opens only for the user and reference it
    # was sealed for, so swapping references between messages gains nothing.
    return f"byok-tasks/1\0{uid}\0{ref}".encode()


def _key_bytes(key: str | bytes) -> bytes:
    if isinstance(key, bytes) and len(key) == 32:
        return key
    text = key.decode("ascii", "replace") if isinstance(key, bytes) else key
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise ValueError("the encryption key must be base64url-encoded") from None
    if len(raw) != 32:
        raise ValueError(f"the encryption key must be 32 bytes (AES-256), not {len(raw)}")
    return raw


def generate_encryption_key() -> str:
    """A fresh value for ``BYOK_TASKS_ENCRYPTION_KEY``."""
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")


class _ResolverCache:
    """Keys from the application's resolver, per process, for ``ttl`` seconds, at most ``size`` of them."""

    def __init__(self, resolve: Resolver, ttl: float, size: int) -> None:
        self.resolve, self.ttl, self.size = resolve, ttl, size
        self._entries: OrderedDict[tuple[str, str], tuple[float, str]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, uid: str, provider: str) -> str | None:
        now = time.monotonic()
        with self._lock:
            entry = self._entries.get((uid, provider))
            if entry is not None and now - entry[0] < self.ttl:
                self._entries.move_to_end((uid, provider))
                return entry[1]
        # Called without the lock: a slow vault must not serialise every thread of the worker.
        key = self.resolve(uid, provider)
        if key is not None:
            with self._lock:
                self._entries[(uid, provider)] = (now, key)
                self._entries.move_to_end((uid, provider))
                while len(self._entries) > self.size:
                    self._entries.popitem(last=False)
        return key


_store: SealedKeyStore | None = None
_resolver: _ResolverCache | None = None


def configure(
    *,
    store: SealedKeyStore | None = None,
    resolver: Resolver | None = None,
    resolver_ttl: float = 60.0,
    resolver_cache_size: int = 1024,
) -> None:
    """Set, once at start, where keys come from; ``install(...)`` calls this with its arguments."""
    global _store, _resolver
    if store is not None:
        _store = store
    if resolver is not None:
        _resolver = _ResolverCache(resolver, resolver_ttl, resolver_cache_size)


def key_store() -> SealedKeyStore | None:
    return _store


def current_key(provider: str) -> str | None:
    """The current user's own key for ``provider``, or None when the context does not make ``provider`` BYOK.

    None means: use the platform's key (failures then count as ``platform``). Raises
    :class:`ByokKeyUnavailable` (or :class:`ByokKeyExpired`) when the provider is BYOK but
    the key cannot be had, so that a task never quietly spends the platform's key instead.
    """
    context = current_context()
    if context is None or not context.uses_own_key(provider):
        return None
    key = context.keyring.get(context.uid, provider) if context.keyring is not None else None
    if key is None and _resolver is not None:
        key = _resolver.get(context.uid, provider)
    if key is None:
        raise ByokKeyUnavailable(f"user {context.uid!r} uses their own {provider} key, but no key was found for it")
    return key
