"""Where a user's keys are held: a context's :class:`Keyring`, Redis (:class:`SealedKeyStore`), a resolver.

The mechanisms only; :mod:`byok_tasks.keys` decides which one answers :func:`byok_tasks.current_key`.
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
from urllib.parse import parse_qs, urlsplit

from ._exceptions import ByokKeyExpired, ByokKeyUnavailable
from .names import is_provider_name
from .redaction import remember_key

__all__ = [
    "ENCRYPTION_KEY_ENV",
    "Keyring",
    "Resolver",
    "ResolverCache",
    "SealedKeyStore",
    "generate_encryption_key",
    "is_reference",
]

ENCRYPTION_KEY_ENV = "BYOK_TASKS_ENCRYPTION_KEY"
Resolver = Callable[[str, str], "str | None"]
_REF = re.compile(r"[A-Za-z0-9_-]{16,64}")
# Options of a Redis URL that would loosen the bound on each call to the key store.
_BOUND_OPTIONS = frozenset({"socket_timeout", "socket_connect_timeout", "retry_on_timeout", "retry_on_error"})


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
                if not is_provider_name(provider):
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

    def get(self, uid: str, provider: str, store: SealedKeyStore | None) -> str | None:
        """The key for ``provider``; sealed keys are opened from ``store`` on first use."""
        with self._lock:
            if self._keys is None:
                if self.ref is None:
                    return None
                if store is None:
                    raise ByokKeyUnavailable(
                        "this task carries sealed keys, but no SealedKeyStore is configured in this process",
                        uid=uid,
                        provider=provider,
                    )
                self._keys = store.open(self.ref, uid, provider=provider)
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
                    "schedule it sooner, give the SealedKeyStore a longer ttl, or use a resolver",
                    uid=uid,
                )
            if self.ref is not None and self._sealed_until is None:
                return self.ref
            if self._keys is None:
                raise ByokKeyUnavailable("there are no keys to seal", uid=uid)
            if store is None:
                raise ByokKeyUnavailable(
                    "keys given to byok_context() need a SealedKeyStore to reach workers: pass key_store= to install()",
                    uid=uid,
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

    Every call to Redis is bounded by ``connect_timeout`` plus ``read_timeout`` seconds; a
    store that is down, frozen or refuses the connection raises :class:`ByokKeyUnavailable`
    (the Redis error chained as its cause) within that bound, on every supported redis-py.
    """

    def __init__(
        self,
        redis_url: str,
        *,
        encryption_key: str | bytes | Sequence[str | bytes] | None = None,
        ttl: float = 3600.0,
        prefix: str = "byok:keys:",
        connect_timeout: float = 1.0,
        read_timeout: float = 2.0,
    ) -> None:
        try:
            import redis
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM
            from redis.backoff import NoBackoff
            from redis.retry import Retry
        except ImportError as exc:
            raise ImportError(f'SealedKeyStore needs the keys extra: pip install "byok-tasks[keys]" ({exc})') from exc

        if not ttl >= 0.001:  # Redis expiries are whole milliseconds; also refuses NaN
            raise ValueError("ttl must be at least 0.001 seconds")
        for name, value in (("connect_timeout", connect_timeout), ("read_timeout", read_timeout)):
            if not 0 < value <= 60:  # also refuses NaN; None would mean "wait forever"
                raise ValueError(f"{name} must be a number of seconds above 0 and at most 60")
        if encryption_key is None:
            encryption_key = os.environ.get(ENCRYPTION_KEY_ENV) or None
        if encryption_key is None:
            raise ValueError(f"sealed keys need an encryption key (argument or {ENCRYPTION_KEY_ENV})")
        keys = [encryption_key] if isinstance(encryption_key, (str, bytes)) else list(encryption_key)
        self._ciphers = [AESGCM(_key_bytes(key)) for key in keys]
        # The URL's query string would override the timeouts given here (redis-py lets it),
        # and with them the bound every caller relies on.
        overridden = _BOUND_OPTIONS & set(parse_qs(urlsplit(redis_url).query))
        if overridden:
            raise ValueError(
                f"set the key store's timeouts with connect_timeout= and read_timeout=, not {sorted(overridden)} "
                "in its URL"
            )
        self._redis: Any = redis.Redis.from_url(
            redis_url,
            # redis-py 5 has no timeouts by default: a frozen store blocks until it thaws.
            socket_connect_timeout=connect_timeout,
            socket_timeout=read_timeout,
            # No retries, pinned: redis-py 6 and later retry three times with backoff by
            # default (on clients made with Redis()), which would multiply the wait. A stale
            # pooled connection is replaced anyway when it is taken from the pool, and a
            # store that refuses connections is seldom back within the seconds a request waits.
            retry=Retry(NoBackoff(), 0),
        )
        self._errors: tuple[type[BaseException], ...] = (redis.RedisError,)
        self.location = redis_location(self._redis.connection_pool.connection_kwargs)
        self.ttl = ttl
        self.prefix = prefix
        # Set by byok_tasks.health: reads the sealed keys and the user's key statuses at once.
        self.reader: Callable[[SealedKeyStore, str, str], Any] | None = None

    def __repr__(self) -> str:
        return f"SealedKeyStore({self.location!r}, ttl={self.ttl}, prefix={self.prefix!r})"

    def seal(self, keys: Mapping[str, str], uid: str) -> str:
        ref = secrets.token_urlsafe(16)
        nonce = secrets.token_bytes(12)
        sealed = nonce + self._ciphers[0].encrypt(nonce, json.dumps(dict(keys)).encode(), _bound_to(uid, ref))
        try:
            self._redis.set(self.prefix + ref, sealed, px=int(self.ttl * 1000))
        except self._errors as exc:
            what = f"the keys of user {uid!r} cannot be sealed, so the task was not sent"
            raise self._unavailable(exc, what, uid) from exc
        return ref

    def open(self, ref: str, uid: str, *, provider: str | None = None) -> dict[str, str]:
        from cryptography.exceptions import InvalidTag

        try:
            name = self.prefix + ref
            # With key health on the same Redis, the user's key statuses come in the same round trip.
            sealed = self._redis.get(name) if self.reader is None else self.reader(self, name, uid)
        except self._errors as exc:
            what = f"the keys sealed for user {uid!r} under reference {ref!r} cannot be fetched"
            raise self._unavailable(exc, what, uid, provider) from exc
        if sealed is None:
            raise ByokKeyExpired(
                f"the keys sealed for user {uid!r} under reference {ref!r} are gone: they outlived the TTL "
                "they were sealed with, or were never stored; send the task again with the user's key",
                uid=uid,
                provider=provider,
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
            "a different encryption key, or a reference copied from another user",
            uid=uid,
            provider=provider,
        )

    def _unavailable(self, exc: BaseException, what: str, uid: str, provider: str | None = None) -> ByokKeyUnavailable:
        # The store is named by host, port and database only: its URL may hold a password.
        return ByokKeyUnavailable(
            f"{what}: the key store at {self.location} failed ({type(exc).__name__}: {exc})", uid=uid, provider=provider
        )


def redis_location(connection_kwargs: Mapping[str, Any]) -> str:
    """Where a Redis client connects, without its credentials: ``host:port/db`` or ``unix-path/db``."""
    db = connection_kwargs.get("db", 0)
    path = connection_kwargs.get("path")
    if path:
        return f"{path}/{db}"
    return f"{connection_kwargs.get('host', 'localhost')}:{connection_kwargs.get('port', 6379)}/{db}"


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


class ResolverCache:
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
