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
from typing import Any, NoReturn

from .context import _PROVIDER_NAME, current_context
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

ENCRYPTION_KEY_ENV = "BYOK_TASKS_ENCRYPTION_KEY"
Resolver = Callable[[str, str], "str | None"]
_REF = re.compile(r"[A-Za-z0-9_-]{16,64}")


class ByokKeyUnavailable(RuntimeError):
    """A provider is BYOK for this context, but the user's key cannot be had. Never a silent fallback."""


class ByokKeyExpired(ByokKeyUnavailable):
    """The sealed keys a task refers to are gone: their TTL passed, or they were never stored."""


def _remember(keys: Mapping[str, str] | None) -> None:
    # Whatever their shape, keys this process has held are redacted from logs and events.
    for key in (keys or {}).values():
        remember_key(key)


def is_reference(value: object) -> bool:
    return isinstance(value, str) and _REF.fullmatch(value) is not None


class Keyring:
    """The keys of one context: given in this process, or sealed under :attr:`ref` for workers.

    Its repr names providers and the reference, never a key. Opened sealed keys are kept
    only as long as the context object, which lives for one task.
    """

    __slots__ = ("_keys", "_lock", "_sealed_until", "ref")

    def __init__(self, keys: Mapping[str, str] | None = None, *, ref: str | None = None) -> None:
        if keys is not None:
            for provider, key in keys.items():
                if not isinstance(provider, str) or not _PROVIDER_NAME.fullmatch(provider):
                    # Not quoted: in a mapping written the wrong way round, this is the key.
                    raise ValueError("keys must map provider names (lowercase letters, digits, '_', '.', '-') to keys")
                # An empty key would make ``current_key(p) or platform_key`` spend the platform's key.
                if not isinstance(key, str) or not key:
                    raise ValueError(f"the {provider} key must be a non-empty string")
        self._keys = dict(keys) if keys is not None else None
        _remember(self._keys)
        self.ref = ref
        # When the copy sealed by this process expires (monotonic clock); None when the
        # reference came from elsewhere, with its keys expiring on a schedule we do not know.
        self._sealed_until: float | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        providers = sorted(self._keys) if self._keys is not None else "sealed"
        return f"Keyring(providers={providers!r}, ref={self.ref!r})"

    def __reduce__(self) -> NoReturn:
        # Exceptions annotated by llm_call hold the context: a pickling result backend must
        # fail to store one (Celery then stores a string stand-in), not store the keys.
        raise TypeError("a Keyring holds keys and is never pickled")

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
                _remember(self._keys)
            return self._keys.get(provider)

    def seal(self, uid: str, store: SealedKeyStore | None, *, delay: float = 0.0) -> str:
        """The reference that travels instead of the keys, for a task starting ``delay`` seconds from now.

        Keys given in this process are sealed on first use, and sealed again under a new
        reference once the stored copy has less than the delay plus half its TTL to live,
        so that a long-lived context never hands out a reference about to expire. A
        reference that came with a task is passed on: its keys expire on their first schedule.
        """
        with self._lock:
            if store is not None and delay > store.ttl:
                raise ByokKeyUnavailable(
                    f"a task scheduled {delay:.0f} s ahead cannot take sealed keys, which live {store.ttl:g} s: "
                    "schedule it sooner, give the SealedKeyStore a longer ttl, or use a resolver"
                )
            if self.ref is not None and self._sealed_until is None:
                return self.ref
            if self._keys is None:
                raise ByokKeyUnavailable("there are no keys to seal")
            if store is None:
                raise ByokKeyUnavailable(
                    "keys given to byok_context() need a SealedKeyStore to reach workers: pass key_store= to install()"
                )
            now = time.monotonic()
            lasts = self._sealed_until is not None and self._sealed_until - now >= delay + store.ttl / 2
            if self.ref is not None and lasts:
                return self.ref
            self.ref = ref = store.seal(self._keys, uid)
            self._sealed_until = now + store.ttl
            return ref


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

        if not ttl >= 0.001:  # Redis expiries are whole milliseconds; also refuses NaN
            raise ValueError("ttl must be at least 0.001 seconds")
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
                f"the keys sealed for user {uid!r} under reference {ref!r} are gone: they outlived the TTL "
                "they were sealed with, or were never stored; send the task again with the user's key"
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
    text = (key.decode("ascii", "replace") if isinstance(key, bytes) else key).strip().rstrip("=")
    try:
        # Strict, so that a mistyped key is refused here rather than decoded into another
        # key; both alphabets, so that `openssl rand -base64 32` works as well.
        raw = base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
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
        if ttl < 0 or size < 0:
            raise ValueError("the resolver cache's ttl and size must not be negative (0 turns caching off)")
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
        if key is not None and not isinstance(key, str):
            raise TypeError(f"the key resolver returned a {type(key).__name__} for {provider}, expected str or None")
        if not key:
            return None  # not cached: a key the user adds now is found on the next task
        if self.size > 0 and self.ttl > 0:
            with self._lock:
                self._entries[(uid, provider)] = (now, key)
                self._entries.move_to_end((uid, provider))
                while len(self._entries) > self.size:
                    self._entries.popitem(last=False)
        return key


_store: SealedKeyStore | None = None
_resolver: _ResolverCache | None = None
_RESOLVER_TTL, _RESOLVER_CACHE_SIZE = 60.0, 1024


def configure(
    *,
    store: SealedKeyStore | None = None,
    resolver: Resolver | None = None,
    resolver_ttl: float | None = None,
    resolver_cache_size: int | None = None,
) -> None:
    """Set, once at start, where keys come from; ``install(...)`` calls this with its arguments.

    Settings left out keep what an earlier call set; a setting an earlier call set
    otherwise is an error, so that a second ``install()`` never quietly resets the first.
    ``resolver_ttl`` (default 60 s) and ``resolver_cache_size`` (default 1,024) need a resolver.
    """
    global _store, _resolver
    if store is not None and not isinstance(store, SealedKeyStore):
        raise TypeError(
            f"key_store must be a SealedKeyStore, such as SealedKeyStore(redis_url), not a {type(store).__name__}"
        )
    if resolver is not None and not callable(resolver):
        raise TypeError("resolver must be a function resolve(uid, provider) -> str | None")
    if store is not None and _store is not None and store is not _store:
        raise ValueError("a different key_store was already configured in this process")
    cache = _resolver
    if resolver is None and cache is None and (resolver_ttl is not None or resolver_cache_size is not None):
        raise ValueError("resolver_ttl and resolver_cache_size configure a resolver: pass resolver= as well")
    if cache is not None and (resolver is not None or resolver_ttl is not None or resolver_cache_size is not None):
        wanted = (
            cache.resolve if resolver is None else resolver,
            cache.ttl if resolver_ttl is None else resolver_ttl,
            cache.size if resolver_cache_size is None else resolver_cache_size,
        )
        if (_named(wanted[0]), *wanted[1:]) != (_named(cache.resolve), cache.ttl, cache.size):
            raise ValueError("a resolver with other settings was already configured in this process")
    if store is not None:
        _store = store
    if resolver is not None and cache is None:
        _resolver = _ResolverCache(
            resolver,
            _RESOLVER_TTL if resolver_ttl is None else resolver_ttl,
            _RESOLVER_CACHE_SIZE if resolver_cache_size is None else resolver_cache_size,
        )


def _named(resolve: Resolver) -> object:
    # A module imported again (a reload, an import that failed half-way and was retried)
    # defines its resolver again: the same function by name, though another object.
    name = (getattr(resolve, "__module__", None), getattr(resolve, "__qualname__", None))
    return name if None not in name and "<locals>" not in str(name[1]) else resolve


def describe_sources() -> str:
    """Where this process's keys come from, for the worker's start-up line; no secret in it."""
    sources = []
    if _store is not None:
        sources.append(f"sealed handoff ({_store!r})")
    if _resolver is not None:
        sources.append(f"resolver (cached {_resolver.ttl:g} s, {_resolver.size} pairs)")
    return " and ".join(sources) or "nowhere (current_key() raises ByokKeyUnavailable for a BYOK provider)"


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
        if isinstance(key, str):
            # On every answer, cached ones too: a key in use stays among the fingerprints kept.
            remember_key(key)
    if key is None:
        keys = "the context's keys do not include it" if context.keyring is not None else "the context carries no keys"
        resolver = "the resolver returned none" if _resolver is not None else "no resolver is configured"
        raise ByokKeyUnavailable(
            f"user {context.uid!r} uses their own {provider} key, but it cannot be found: {keys} and {resolver}"
        )
    return key
