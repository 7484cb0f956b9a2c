"""The process's byok-tasks settings: one object, written by ``install()`` and read by the core.

Every adapter's ``install()`` (Celery, RQ, Dramatiq) goes through :func:`configure`, so a
process has one header codec and one set of key sources whichever frameworks it runs; a
second ``install()`` with other settings is an error, never a quiet reset. The error
tracker's integration sets the event sink. :func:`reset` is for tests only: it forgets
everything, as in a fresh process (patches already applied stay, and do nothing until
the next ``install()``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from .header import DEFAULT_MAX_AGE, HeaderCodec
from .keyring import Resolver, ResolverCache, SealedKeyStore

__all__ = ["EventSink", "Settings", "configure", "configure_keys", "current", "reset"]

_RESOLVER_TTL, _RESOLVER_CACHE_SIZE = 60.0, 1024


class EventSink(Protocol):
    """Where failures become error-tracker events; implemented by the Sentry integration."""

    def capture_handled(self, exc: BaseException) -> None:
        """An event for a failure the application handled and reported itself."""

    def capture_task_failure(self, exc: BaseException, framework: str) -> bool:
        """An event for a task's final failure, unless the tracker's own integration for
        ``framework`` sends one; True when this sink sent it."""

    def describe(self) -> str:
        """One line for the worker's start-up log: where events go, and the storm budget."""

    def flush(self) -> None:
        """Send what is queued, within the tracker's own shutdown timeout: the process is about to vanish."""


@dataclass
class Settings:
    codec: HeaderCodec | None = None  # None until an adapter's install(): nothing is propagated
    key_store: SealedKeyStore | None = None
    resolver: ResolverCache | None = None
    sink: EventSink | None = None
    # Set by byok_tasks.health: raises ByokKeyRejected for a key known dead, before it is handed out.
    key_check: Callable[[str, str, str], None] | None = None


_settings = Settings()


def current() -> Settings:
    return _settings


def reset() -> None:
    """Forget every setting, as in a fresh process. For tests."""
    global _settings
    _settings = Settings()


def configure(
    framework: str,
    *,
    secret: str | bytes | Sequence[str | bytes] | None = None,
    require_signature: bool = False,
    max_age: float = DEFAULT_MAX_AGE,
    key_store: SealedKeyStore | None = None,
    resolver: Resolver | None = None,
    resolver_ttl: float | None = None,
    resolver_cache_size: int | None = None,
) -> bool:
    """Apply the arguments of ``byok_tasks.<framework>.install()``; True the first time a codec is set.

    Key settings left out keep what an earlier call set; a setting an earlier call set
    otherwise is an error. ``resolver_ttl`` (default 60 s) and ``resolver_cache_size``
    (default 1,024) need a resolver. Nothing is changed when anything is refused.
    """
    codec = HeaderCodec.configure(secret, require_signature=require_signature, max_age=max_age)
    if _settings.codec is not None and codec != _settings.codec:
        raise ValueError(
            f"byok_tasks.{framework}.install() was already called in this process with other settings "
            "(secret, require_signature or max_age): every install() of a process must agree"
        )
    store, cache = _key_sources(key_store, resolver, resolver_ttl, resolver_cache_size)
    first = _settings.codec is None
    _settings.codec, _settings.key_store, _settings.resolver = codec, store, cache
    return first


def configure_keys(
    *,
    store: SealedKeyStore | None = None,
    resolver: Resolver | None = None,
    resolver_ttl: float | None = None,
    resolver_cache_size: int | None = None,
) -> None:
    """Set where keys come from, as ``install()`` does, without a header codec (a web process that only reads keys)."""
    _settings.key_store, _settings.resolver = _key_sources(store, resolver, resolver_ttl, resolver_cache_size)


def _key_sources(
    store: SealedKeyStore | None,
    resolver: Resolver | None,
    resolver_ttl: float | None,
    resolver_cache_size: int | None,
) -> tuple[SealedKeyStore | None, ResolverCache | None]:
    if store is not None and not isinstance(store, SealedKeyStore):
        raise TypeError(
            f"key_store must be a SealedKeyStore, such as SealedKeyStore(redis_url), not a {type(store).__name__}"
        )
    if resolver is not None and not callable(resolver):
        raise TypeError("resolver must be a function resolve(uid, provider) -> str | None")
    if store is not None and _settings.key_store is not None and store is not _settings.key_store:
        raise ValueError("a different key_store was already configured in this process")
    cache = _settings.resolver
    tuning = resolver_ttl is not None or resolver_cache_size is not None
    if resolver is None and cache is None and tuning:
        raise ValueError("resolver_ttl and resolver_cache_size configure a resolver: pass resolver= as well")
    if cache is not None and (resolver is not None or tuning):
        wanted = (
            cache.resolve if resolver is None else resolver,
            cache.ttl if resolver_ttl is None else resolver_ttl,
            cache.size if resolver_cache_size is None else resolver_cache_size,
        )
        if (_named(wanted[0]), *wanted[1:]) != (_named(cache.resolve), cache.ttl, cache.size):
            raise ValueError("a resolver with other settings was already configured in this process")
    if resolver is not None and cache is None:
        cache = ResolverCache(
            resolver,
            _RESOLVER_TTL if resolver_ttl is None else resolver_ttl,
            _RESOLVER_CACHE_SIZE if resolver_cache_size is None else resolver_cache_size,
        )
    return store or _settings.key_store, cache


def _named(resolve: Resolver) -> object:
    # A module imported again (a reload, an import that failed half-way and was retried)
    # defines its resolver again: the same function by name, though another object.
    # Not a lambda nor a nested function: each of those shares its name with others.
    name = (getattr(resolve, "__module__", None), getattr(resolve, "__qualname__", None))
    return name if None not in name and "<" not in str(name[1]) else resolve
