"""Key health across the fleet: one record per user's key, in Redis, and three features on it.

- **The record**: per (uid, provider), for the key last seen failing (identified by its
  fingerprint, an HMAC-SHA256 of the key under the deployment's secret, never the key):
  status, first and last failure, count, the last feature and model, the provider's
  message (redacted), the calls the breaker saved. Written on a failure and on the first
  success after one; it expires ``ttl`` seconds after its last write.
- **The user told once**: ``notify`` (a callable, or a Celery task / RQ job name) is
  called with a :class:`KeyNotice` once per (uid, provider, reason) per ``window`` across
  the fleet, off the task's path, at least once: a hook that raises releases its claim,
  and a claim whose worker died expires after ``claim_ttl`` seconds.
- **A dead key not called again**: after ``threshold`` failures of the same reason
  (``invalid_key``, ``permission``, ``quota``) within ``threshold_window`` seconds,
  :func:`byok_tasks.current_key` raises :class:`ByokKeyRejected` for that key without
  calling the provider, for ``cooloff`` seconds after its last failure; then one task
  (a probe claim) calls it, and its answer closes or reopens the breaker. A success, a
  new key or :func:`clear_key_status` lifts it.
- **One storm budget** (:mod:`byok_tasks.storm`): ByokIntegration's budget is counted here.

Every call to the store is bounded by ``timeout`` (50 ms by default). A store that does not
answer costs a task at most that once every ``retry_interval`` seconds per process: the
breaker fails open (the provider is called), failures go unrecorded, storm control falls
back to the process's own budget, and the log says so once. Nothing here ever fails a
task, nor hands out the platform's key.

Configure one :class:`KeyHealth` and give it to ``install(app, key_health=...)`` (Celery
and RQ); a web process that only reads and clears statuses calls :func:`configure`.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import hmac
import json
import logging
import os
import queue
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import asdict, dataclass
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

from . import report, settings, storm
from ._exceptions import ByokKeyUnavailable
from .context import current_context
from .failure import LLMFailure
from .keyring import ENCRYPTION_KEY_ENV, SealedKeyStore, redis_location
from .providers import provider_name
from .redaction import redact
from .running import running_task

__all__ = [
    "ByokKeyRejected",
    "KeyHealth",
    "KeyHealthError",
    "KeyNotice",
    "KeyStatus",
    "clear_key_status",
    "configure",
    "fingerprint",
    "key_status",
]

logger = logging.getLogger(__name__)

Status = Literal["ok", "invalid_key", "permission", "quota", "key_unavailable"]
# The failures of a user's key that the record keeps, and those that open the breaker.
TRACKED = frozenset({"invalid_key", "permission", "quota", "key_unavailable"})
BREAKING = frozenset({"invalid_key", "permission", "quota"})
NO_KEY = "-"  # the fingerprint of a failure with no key to fingerprint (missing, expired)
MAX_MESSAGE = 500


class KeyHealthError(ValueError):
    """A :class:`KeyHealth` setting that cannot work."""


class ByokKeyRejected(ByokKeyUnavailable):
    """The user's key is known dead across the fleet: the provider was not called.

    ``status`` is what the key was last refused for (``invalid_key``, ``permission``,
    ``quota``), ``fingerprint`` which key (never the key), ``failures`` how many times,
    ``until`` (epoch seconds) when a probe may try it again. A ``ByokKeyUnavailable``:
    never retried, filed as the user's (``llm.source:byok``, reason ``key_unavailable``).
    """

    def __init__(
        self,
        message: str,
        *,
        uid: str | None = None,
        provider: str | None = None,
        status: str = "",
        fingerprint: str = NO_KEY,
        failures: int = 0,
        until: float = 0.0,
    ) -> None:
        # Defaults, so that a result backend can rebuild it from its message alone.
        super().__init__(message, uid=uid, provider=provider)
        self.status, self.fingerprint, self.failures, self.until = status, fingerprint, failures, until


@dataclass(frozen=True)
class KeyNotice:
    """What the user hook is called with: whose key, which provider, why, since when, how often."""

    uid: str
    provider: str
    reason: str
    message: str
    when: float  # epoch seconds of the failure that claimed the notice
    failures: int  # failures recorded for this key so far

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class KeyStatus:
    """The health of one user's key for one provider, as :func:`key_status` answers it."""

    provider: str
    status: str  # ok, invalid_key, permission, quota, key_unavailable
    fingerprint: str
    first_failure: float | None  # epoch seconds
    last_failure: float | None
    failures: int
    refused: int  # tasks refused by the breaker: provider calls not made
    feature: str | None
    model: str | None
    message: str
    breaker: Literal["closed", "open", "half-open"]


class KeyHealth:
    """The configuration of key health, made once and given to ``install(...)`` of Celery and RQ.

    ``redis_url``: any Redis (bounded: ``timeout`` seconds per call, no retries; a URL that
    sets its own socket timeouts is refused). ``notify``: ``hook(notice: KeyNotice)``, or the
    name of a Celery task / RQ job to enqueue with the notice's fields as keyword arguments
    (RQ: on ``notify_queue``). ``window``: one notice per (uid, provider, reason) per that
    many seconds. ``threshold`` failures of one reason within ``threshold_window`` seconds
    open the breaker; it stays open ``cooloff`` seconds after the last failure. ``secret``
    keys the fingerprints (else ``BYOK_TASKS_SECRET``, else ``BYOK_TASKS_ENCRYPTION_KEY``):
    the same on every process. ``ttl``: how long a record outlives its last write.
    """

    def __init__(
        self,
        redis_url: str,
        *,
        notify: Callable[[KeyNotice], object] | str | None = None,
        notify_queue: str = "default",
        window: float = 24 * 3600.0,
        threshold: int = 3,
        threshold_window: float = 600.0,
        cooloff: float = 900.0,
        secret: str | bytes | None = None,
        ttl: float = 7 * 24 * 3600.0,
        timeout: float = 0.05,
        retry_interval: float = 2.0,
        claim_ttl: float = 60.0,
        probe_ttl: float = 60.0,
        cache_ttl: float = 5.0,
        prefix: str = "byok:health:",
    ) -> None:
        if not isinstance(redis_url, str) or not redis_url:
            raise KeyHealthError("KeyHealth needs the URL of a Redis, such as redis://localhost:6379/0")
        if notify is not None and not callable(notify) and not (isinstance(notify, str) and notify):
            raise KeyHealthError("notify must be a callable hook(notice) or the name of a Celery task / RQ job")
        if not isinstance(threshold, int) or isinstance(threshold, bool) or threshold < 1:
            raise KeyHealthError("threshold must be a whole number of failures, at least 1")
        for name, value, low, high in (
            ("window", window, 1.0, 366 * 24 * 3600.0),
            ("threshold_window", threshold_window, 1.0, 366 * 24 * 3600.0),
            ("cooloff", cooloff, 0.001, 366 * 24 * 3600.0),
            ("ttl", ttl, 60.0, 366 * 24 * 3600.0),
            ("timeout", timeout, 0.001, 10.0),
            ("retry_interval", retry_interval, 0.0, 3600.0),
            ("claim_ttl", claim_ttl, 0.01, 24 * 3600.0),
            ("probe_ttl", probe_ttl, 0.01, 24 * 3600.0),
            ("cache_ttl", cache_ttl, 0.0, 3600.0),
        ):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
                # A number is quoted; anything else only by its type: a string here may be a key.
                given = repr(value) if isinstance(value, (int, float)) else f"a {type(value).__name__}"
                raise KeyHealthError(f"{name} must be a number of seconds, {_span(low)} to {_span(high)}, not {given}")
        if not isinstance(prefix, str) or not prefix:
            raise KeyHealthError("prefix must be a non-empty string")
        if not isinstance(notify_queue, str) or not notify_queue:
            raise KeyHealthError("notify_queue must be the name of an RQ queue")
        overridden = {"socket_timeout", "socket_connect_timeout", "retry_on_timeout", "retry_on_error"} & set(
            parse_qs(urlsplit(redis_url).query)
        )
        if overridden:
            raise KeyHealthError(f"set the key-health store's bound with timeout=, not {sorted(overridden)} in its URL")
        self.secret = _secret(secret)
        self.redis_url, self.notify, self.notify_queue = redis_url, notify, notify_queue
        self.window, self.threshold, self.threshold_window, self.cooloff = window, threshold, threshold_window, cooloff
        self.ttl, self.timeout, self.retry_interval = ttl, timeout, retry_interval
        self.claim_ttl, self.probe_ttl, self.cache_ttl, self.prefix = claim_ttl, probe_ttl, cache_ttl, prefix
        self._store = _Store(redis_url, timeout, retry_interval)

    def __repr__(self) -> str:
        hook = self.notify if isinstance(self.notify, (str, type(None))) else getattr(self.notify, "__name__", "hook")
        return (
            f"KeyHealth({self._store.location!r}, notify={hook!r}, window={self.window:g}, "
            f"threshold={self.threshold} in {self.threshold_window:g} s, cooloff={self.cooloff:g})"
        )

    @property
    def location(self) -> str:
        return self._store.location

    def fingerprint(self, key: str) -> str:
        """The key's fingerprint: HMAC-SHA256 under the secret, 16 hex digits. Never the key."""
        return hmac.new(self.secret, b"byok-tasks/key\0" + key.encode(), hashlib.sha256).hexdigest()[:16]

    # -- Redis layout -------------------------------------------------------------------------

    def _record_key(self, uid: str) -> str:
        return f"{self.prefix}u:{uid}"

    def _notice_key(self, uid: str, provider: str, reason: str) -> str:
        return f"{self.prefix}n:{uid}\0{provider}\0{reason}"

    def _probe_key(self, uid: str, provider: str, fp: str) -> str:
        return f"{self.prefix}p:{uid}\0{provider}\0{fp}"


def _span(seconds: float) -> str:
    days = seconds / 86400
    return f"{days:g} day{'s' * (days != 1)}" if days >= 1 else f"{seconds:g} s"


def _secret(secret: str | bytes | None) -> bytes:
    if secret is None:
        secret = os.environ.get("BYOK_TASKS_SECRET") or os.environ.get(ENCRYPTION_KEY_ENV) or None
        if secret is not None and "," in secret:
            secret = secret.split(",", 1)[0]  # a list of secrets: the first signs
    if secret is None:
        raise KeyHealthError(
            "key health fingerprints keys with a secret: pass secret=, or set BYOK_TASKS_SECRET "
            f"(or {ENCRYPTION_KEY_ENV}) on every process"
        )
    raw = secret.encode() if isinstance(secret, str) else secret
    if not isinstance(raw, bytes) or len(raw) < 16:
        raise KeyHealthError("the key-health secret must be at least 16 bytes")
    return raw


class _Store:
    """The bounded Redis client, and what this process knows of its reachability."""

    def __init__(self, redis_url: str, timeout: float, retry_interval: float) -> None:
        try:
            import redis
            from redis.backoff import NoBackoff
            from redis.retry import Retry
        except ImportError as exc:
            raise ImportError(f'key health needs redis: pip install "byok-tasks[keys]" ({exc})') from exc
        try:
            self.client: Any = redis.Redis.from_url(
                redis_url, socket_connect_timeout=timeout, socket_timeout=timeout, retry=Retry(NoBackoff(), 0)
            )
        except ValueError:
            # Not quoted: the URL may hold the store's password.
            raise KeyHealthError("redis_url must be a redis://, rediss:// or unix:// URL") from None
        self._errors: tuple[type[BaseException], ...] = (redis.RedisError, OSError)
        self.location = redis_location(self.client.connection_pool.connection_kwargs)
        self.retry_interval = retry_interval
        self._down_until = 0.0
        self._said_down = False
        self._lock = threading.Lock()

    def call(self, command: Callable[..., Any], *args: Any) -> Any:
        """``command(client, *args)``; raises :class:`storm.StoreUnavailable` when the store did not answer."""
        if self._down_until and time.monotonic() < self._down_until:
            raise storm.StoreUnavailable(self.location)
        try:
            answer = command(self.client, *args)
        except self._errors as exc:
            self.failed(exc)
            raise storm.StoreUnavailable(self.location) from exc
        if self._said_down:
            with self._lock:
                if self._said_down:
                    self._said_down, self._down_until = False, 0.0
                    logger.warning("the key-health store at %s answers again: key health is back on", self.location)
        return answer

    def failed(self, exc: BaseException) -> None:
        with self._lock:
            self._down_until = time.monotonic() + self.retry_interval
            if not self._said_down:
                self._said_down = True
                logger.warning(
                    "the key-health store at %s does not answer (%s: %s): until it does, the breaker lets calls "
                    "through, failures are not recorded, users are not told and storm control counts per process",
                    self.location,
                    type(exc).__name__,
                    redact(str(exc)),
                )


# -- Lua: each one atomic round trip ----------------------------------------------------------

# KEYS: record hash, notice claim, probe claim. ARGV: provider, fingerprint, reason, now (ms),
# feature, model, message, threshold window (ms), ttl (ms), claim ttl (ms), claim token,
# notify (0/1), refused (0/1: the breaker refused the key; counted, its status kept).
_RECORD_FAILURE = """
local raw = redis.call('HGET', KEYS[1], ARGV[1])
local r = nil
if raw then r = cjson.decode(raw) end
local now = tonumber(ARGV[4])
if ARGV[13] == '1' then
  if (not r) or r.fp ~= ARGV[2] then return {false, 0} end
  r.refused = (r.refused or 0) + 1
  r.count = r.count + 1
else
  if (not r) or r.fp ~= ARGV[2] or r.status == 'ok' then
    r = {fp = ARGV[2], first = now, count = 0, refused = (r and r.fp == ARGV[2] and r.refused) or 0,
         streak = 0, streak_start = now, status = ARGV[3]}
  end
  if r.status ~= ARGV[3] or now - r.streak_start > tonumber(ARGV[8]) then
    r.streak = 0
    r.streak_start = now
  end
  r.streak = r.streak + 1
  r.count = r.count + 1
  r.status = ARGV[3]
  r.last = now
  r.feature = ARGV[5]
  r.model = ARGV[6]
  r.message = ARGV[7]
  redis.call('DEL', KEYS[3])
end
local encoded = cjson.encode(r)
redis.call('HSET', KEYS[1], ARGV[1], encoded)
redis.call('PEXPIRE', KEYS[1], ARGV[9])
local claimed = 0
if ARGV[12] == '1' and redis.call('SET', KEYS[2], 'p:' .. ARGV[11], 'NX', 'PX', ARGV[10]) then claimed = 1 end
return {encoded, claimed}
"""

# KEYS: record hash, probe claim. ARGV: provider, fingerprint, ttl (ms). The key worked.
_RECORD_OK = """
local raw = redis.call('HGET', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2])
if not raw then return false end
local r = cjson.decode(raw)
if r.fp ~= ARGV[2] or r.status == 'ok' then return false end
r.status = 'ok'
r.streak = 0
local encoded = cjson.encode(r)
redis.call('HSET', KEYS[1], ARGV[1], encoded)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return encoded
"""

# KEYS: notice claim. ARGV: the claim's token, then 'sent' and the window (ms), or 'release'.
_SETTLE_CLAIM = """
if redis.call('GET', KEYS[1]) ~= 'p:' .. ARGV[1] then return 0 end
if ARGV[2] == 'sent' then redis.call('SET', KEYS[1], 's:' .. ARGV[1], 'PX', ARGV[3]) else redis.call('DEL', KEYS[1]) end
return 1
"""


# -- this process's state ---------------------------------------------------------------------

_health: KeyHealth | None = None
_sender: Callable[[str, dict[str, Any]], object] | None = None
# uid -> (monotonic time read, {provider: record}); records of healthy users are kept cache_ttl.
_cache: dict[str, tuple[float, dict[str, dict[str, Any]]]] = {}
_CACHE_SIZE = 10_000
_cache_lock = threading.Lock()


@dataclass
class _Handed:
    """The keys handed out to one task (or request) that had a non-ok status when handed out."""

    owner: object
    pending_ok: dict[tuple[str, str], str]  # (uid, provider) -> fingerprint
    fingerprints: dict[tuple[str, str], str]
    fresh: dict[str, dict[str, dict[str, Any]]]  # uid -> records read in this task's sealed-keys round trip


_handed: ContextVar[_Handed | None] = ContextVar("byok_health_handed", default=None)


def configure(health: KeyHealth | None, *, sender: Callable[[str, dict[str, Any]], object] | None = None) -> None:
    """Use ``health`` in this process: web side (for :func:`key_status`) and workers (``install`` calls this).

    ``sender(name, kwargs)`` enqueues a named hook (set by the Celery or RQ adapter). A
    second call with another ``KeyHealth`` is an error; ``configure(None)`` turns it off.
    """
    global _health, _sender
    if health is None:
        _health, _sender = None, None
        settings.current().key_check = None
        if (store := settings.current().key_store) is not None:
            store.reader = None
        storm.set_fleet_budget(None)
        report.remove_failure_observer(_on_failure)
        with _cache_lock:
            _cache.clear()
        return
    if not isinstance(health, KeyHealth):
        raise TypeError(f"key_health must be a KeyHealth, not a {type(health).__name__}")
    if _health is not None and health is not _health:
        raise ValueError("a different KeyHealth was already configured in this process")
    _health = health
    if sender is not None and _sender is None:
        _sender = sender
    settings.current().key_check = _check
    if (store := settings.current().key_store) is not None:
        store.reader = _read_with_sealed_keys
    storm.set_fleet_budget(storm.RedisFleetBudget(health._store.call, health.prefix + "s:", health.ttl))
    report.add_failure_observer(_on_failure)


def configured() -> KeyHealth | None:
    return _health


def _need(health: KeyHealth | None) -> KeyHealth:
    found = health if health is not None else _health
    if found is None:
        raise RuntimeError(
            "key health is not configured in this process: byok_tasks.health.configure(KeyHealth(redis_url)) "
            "(workers: install(..., key_health=...))"
        )
    return found


def fingerprint(key: str, health: KeyHealth | None = None) -> str:
    """The fingerprint key health files ``key`` under (HMAC-SHA256 under its secret, truncated)."""
    return _need(health).fingerprint(key)


# -- the web side: reading and clearing -------------------------------------------------------


def key_status(uid: str, *, health: KeyHealth | None = None) -> dict[str, KeyStatus]:
    """The health of ``uid``'s keys, by provider: for a settings page or a banner.

    Providers never seen failing are absent (their keys are fine as far as anyone knows).
    Raises ``redis.RedisError`` when the store cannot be read: the caller decides what to show.
    """
    found = _need(health)
    raw = found._store.client.hgetall(found._record_key(uid))
    records = _decoded(raw)
    now = time.time()
    return {provider: _status_of(found, provider, record, now) for provider, record in sorted(records.items())}


def clear_key_status(uid: str, provider: str, *, health: KeyHealth | None = None) -> None:
    """Forget ``uid``'s record for ``provider`` (call it when the user saves a new key).

    Lifts the breaker, and lets the next failure of that provider's key tell the user again.
    Other processes see it on their next read (at most ``cache_ttl`` seconds for a healthy key).
    """
    provider_name(provider)
    found = _need(health)
    client = found._store.client
    raw = client.hget(found._record_key(uid), provider)
    names = [found._notice_key(uid, provider, reason) for reason in TRACKED]
    if raw is not None:
        with contextlib.suppress(ValueError, TypeError, KeyError):
            names.append(found._probe_key(uid, provider, str(json.loads(raw)["fp"])))
    pipe = client.pipeline(transaction=True)
    pipe.hdel(found._record_key(uid), provider)
    pipe.delete(*names)
    pipe.execute()
    with _cache_lock:
        _cache.pop(uid, None)


def _decoded(raw: Mapping[Any, Any]) -> dict[str, dict[str, Any]]:
    records = {}
    for name, value in raw.items():
        try:
            record = json.loads(value)
        except (ValueError, TypeError):
            continue
        if isinstance(record, dict):
            records[name.decode() if isinstance(name, bytes) else str(name)] = record
    return records


def _status_of(health: KeyHealth, provider: str, record: dict[str, Any], now: float) -> KeyStatus:
    def seconds(name: str) -> float | None:
        value = record.get(name)
        return float(value) / 1000 if isinstance(value, (int, float)) else None

    return KeyStatus(
        provider=provider,
        status=str(record.get("status", "ok")),
        fingerprint=str(record.get("fp", NO_KEY)),
        first_failure=seconds("first"),
        last_failure=seconds("last"),
        failures=int(record.get("count", 0)),
        refused=int(record.get("refused", 0)),
        feature=record.get("feature") or None,
        model=record.get("model") or None,
        message=str(record.get("message", "")),
        breaker=_breaker(health, record, now),
    )


def _breaker(health: KeyHealth, record: dict[str, Any], now: float) -> Literal["closed", "open", "half-open"]:
    if record.get("status") not in BREAKING or int(record.get("streak", 0)) < health.threshold:
        return "closed"
    last = float(record.get("last", 0)) / 1000
    return "open" if now - last < health.cooloff else "half-open"


# -- the worker side: handing out a key ---------------------------------------------------------


def _owner() -> object:
    # The running task (Celery, RQ), else the context (a web request), else nothing.
    return running_task() or current_context() or _handed


def _this_tasks() -> _Handed:
    owner = _owner()
    handed = _handed.get()
    if handed is None or handed.owner is not owner:
        handed = _Handed(owner, {}, {}, {})
        _handed.set(handed)
    return handed


def _cached(uid: str, *, recent: float) -> dict[str, dict[str, Any]] | None:
    with _cache_lock:
        entry = _cache.get(uid)
    if entry is None or time.monotonic() - entry[0] >= recent:
        return None
    return entry[1]


def _remember(uid: str, records: dict[str, dict[str, Any]]) -> None:
    with _cache_lock:
        _cache.pop(uid, None)
        _cache[uid] = (time.monotonic(), records)
        while len(_cache) > _CACHE_SIZE:
            del _cache[next(iter(_cache))]


def _update(uid: str, provider: str, record: dict[str, Any]) -> None:
    with _cache_lock:
        entry = _cache.get(uid)
        records = dict(entry[1]) if entry is not None else {}
        records[provider] = record
        # Not made fresher than it was: only the provider's record is new.
        _cache[uid] = (entry[0] if entry is not None else 0.0, records)


def _read_with_sealed_keys(store: SealedKeyStore, name: str, uid: str) -> Any:
    """The sealed keys at ``name`` and, in the same round trip when the key store is the health
    store's Redis, ``uid``'s key-health records (kept for the task that opens them)."""
    health = _health
    if health is None or store.location != health.location:
        return store._redis.get(name)
    pipe = store._redis.pipeline(transaction=False)
    pipe.get(name)
    pipe.hgetall(health._record_key(uid))
    sealed, records = pipe.execute(raise_on_error=False)
    if isinstance(sealed, BaseException):
        raise sealed
    if not isinstance(records, BaseException):
        decoded = _decoded(records)
        _remember(uid, decoded)
        _this_tasks().fresh[uid] = decoded
    return sealed


def _records_of(health: KeyHealth, uid: str, provider: str, fp: str) -> dict[str, dict[str, Any]] | None:
    # A healthy key: the process's copy, up to cache_ttl old. A key known failing: read now
    # (or in this task's sealed-keys round trip), so that a breaker opened elsewhere is seen.
    records = _cached(uid, recent=health.cache_ttl)
    if records is not None:
        record = records.get(provider)
        if record is None or record.get("fp") != fp or record.get("status") == "ok":
            return records
        fresh = _this_tasks().fresh.get(uid)
        if fresh is not None:
            return fresh
    try:
        raw = health._store.call(lambda client: client.hgetall(health._record_key(uid)))
    except storm.StoreUnavailable:
        return None  # fail open: said once by the store
    fresh = _decoded(raw)
    _remember(uid, fresh)
    return fresh


def _check(uid: str, provider: str, key: str) -> None:
    """Called by current_key() before it hands ``key`` out: raises ByokKeyRejected when it is known dead."""
    health = _health
    if health is None:
        return
    fp = health.fingerprint(key)
    handed = _this_tasks()
    handed.fingerprints[(uid, provider)] = fp
    records = _records_of(health, uid, provider, fp)
    record = (records or {}).get(provider)
    if record is None or record.get("fp") != fp or record.get("status") == "ok":
        return
    handed.pending_ok[(uid, provider)] = fp  # a success of this task writes ok
    state = _breaker(health, record, time.time())
    if state == "closed":
        return
    if state == "half-open":
        probe = health._probe_key(uid, provider, fp)
        ms = int(health.probe_ttl * 1000)
        try:
            won = health._store.call(lambda client: client.set(probe, "1", nx=True, px=ms))
        except storm.StoreUnavailable:
            return
        if won:
            logger.info("user %r's %s key %s: the breaker lets one task try it again", uid, provider, fp)
            return
    status = str(record.get("status"))
    last = float(record.get("last", 0)) / 1000
    until = last + health.cooloff
    refusals = int(record.get("count", 0)) - int(record.get("refused", 0))
    raise ByokKeyRejected(
        f"user {uid!r}'s {provider} key (fingerprint {fp}) was refused by {provider} as {status} {refusals} "
        f"times, last at {_clock(last)}: not called again before {_clock(until)} unless the user saves a new "
        "key (clear_key_status) or a task succeeds with it",
        uid=uid,
        provider=provider,
        status=status,
        fingerprint=fp,
        failures=int(record.get("count", 0)),
        until=until,
    )


def _clock(epoch: float) -> str:
    return time.strftime("%H:%M:%S UTC", time.gmtime(epoch))


def task_succeeded() -> None:
    """For the adapters' success paths: a key handed out with a non-ok status worked, so write ``ok``.

    Costs nothing when every key the task used was healthy.
    """
    handed = _handed.get()
    health = _health
    if handed is None or health is None or not handed.pending_ok or handed.owner is not _owner():
        return
    pending, handed.pending_ok = handed.pending_ok, {}
    for (uid, provider), fp in pending.items():
        names = [health._record_key(uid), health._probe_key(uid, provider, fp)]
        ms = int(health.ttl * 1000)
        try:
            encoded = health._store.call(_eval, _RECORD_OK, 2, *names, provider, fp, ms)
        except storm.StoreUnavailable:
            continue
        if encoded:
            logger.info("user %r's %s key %s works again: its status is ok", uid, provider, fp)
            _update(uid, provider, json.loads(encoded))


# -- the failure path: recording and telling --------------------------------------------------


def _eval(client: Any, script: str, numkeys: int, *args: Any) -> Any:
    return client.eval(script, numkeys, *args)


def _rejection(exc: BaseException) -> ByokKeyRejected | None:
    link: BaseException | None = exc
    for _ in range(16):
        if link is None:
            return None
        if isinstance(link, ByokKeyRejected):
            return link
        link = link.__cause__ or link.__context__
    return None


def _on_failure(failure: LLMFailure, exc: BaseException) -> None:
    """The failure observer: one round trip records the failure and claims the user's notice."""
    health = _health
    if health is None or failure.source != "byok" or failure.uid is None or failure.reason not in TRACKED:
        return
    uid, provider = failure.uid, failure.provider
    rejected = _rejection(exc)
    if rejected is not None:
        fp, reason, refused = rejected.fingerprint, rejected.status, "1"
    else:
        fp, reason, refused = NO_KEY, failure.reason, "0"
        handed = _handed.get()
        if failure.reason != "key_unavailable" and handed is not None and handed.owner is _owner():
            fp = handed.fingerprints.get((uid, provider), NO_KEY)
        if handed is not None:
            handed.pending_ok.pop((uid, provider), None)  # this key failed: no ok for it
    now_ms = int(time.time() * 1000)
    token = secrets.token_hex(8)
    names = [health._record_key(uid), health._notice_key(uid, provider, reason), health._probe_key(uid, provider, fp)]
    args = [
        provider, fp, reason, now_ms, failure.feature or "", failure.model or "",
        redact(failure.message)[:MAX_MESSAGE], int(health.threshold_window * 1000), int(health.ttl * 1000),
        int(health.claim_ttl * 1000), token, "1" if health.notify is not None else "0", refused,
    ]  # fmt: skip
    try:
        encoded, claimed = health._store.call(lambda client: client.eval(_RECORD_FAILURE, 3, *names, *args))
    except storm.StoreUnavailable:
        return
    if not encoded:
        return
    record = json.loads(encoded)
    _update(uid, provider, record)
    if claimed:
        notice = KeyNotice(
            uid=uid,
            provider=provider,
            reason=reason,
            message=str(record.get("message") or redact(failure.message)[:MAX_MESSAGE]),
            when=now_ms / 1000,
            failures=int(record.get("count", 1)),
        )
        _deliveries.submit(health, notice, names[1], token)


class _Deliveries:
    """The user hook, called on a thread of its own (one per process, started after a fork)."""

    MAX_WAITING = 1000

    def __init__(self) -> None:
        self._queue: queue.Queue[tuple[KeyHealth, KeyNotice, str, str]] = queue.Queue(self.MAX_WAITING)
        self._pid: int | None = None
        self._lock = threading.Lock()

    def submit(self, health: KeyHealth, notice: KeyNotice, claim: str, token: str) -> None:
        with self._lock:
            if self._pid != os.getpid():
                # A forked child inherits the parent's queue object but not its thread.
                self._queue = queue.Queue(self.MAX_WAITING)
                self._pid = os.getpid()
                threading.Thread(target=self._run, name="byok-key-health-notify", daemon=True).start()
        try:
            self._queue.put_nowait((health, notice, claim, token))
        except queue.Full:
            _settle(health, claim, token, sent=False)

    def flush(self, timeout: float = 5.0) -> None:
        """Wait (at most ``timeout`` seconds) for the hook calls queued here: the process is about to exit."""
        if self._pid != os.getpid():
            return
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)

    def _run(self) -> None:
        work = self._queue
        while True:
            health, notice, claim, token = work.get()
            try:
                _deliver(health, notice)
            except Exception as exc:
                logger.warning(
                    "the key-health hook failed for user %r (%s %s): %s: %s; released, so that a later failure "
                    "tries again",
                    notice.uid,
                    notice.provider,
                    notice.reason,
                    type(exc).__name__,
                    redact(str(exc)),
                )
                _settle(health, claim, token, sent=False)
            else:
                _settle(health, claim, token, sent=True)
            finally:
                work.task_done()


def _deliver(health: KeyHealth, notice: KeyNotice) -> None:
    hook = health.notify
    if callable(hook):
        hook(notice)
    elif isinstance(hook, str):
        if _sender is None:
            raise RuntimeError(f"notify={hook!r} names a task, but no Celery or RQ install() gave a way to send it")
        _sender(hook, notice.as_dict())
    logger.info("user %r told about their %s key: %s", notice.uid, notice.provider, notice.reason)


def _settle(health: KeyHealth, claim: str, token: str, *, sent: bool) -> None:
    ms = int(health.window * 1000)
    with contextlib.suppress(storm.StoreUnavailable):
        health._store.call(
            lambda client: client.eval(_SETTLE_CLAIM, 1, claim, token, "sent" if sent else "release", ms)
        )


_deliveries = _Deliveries()


def flush(timeout: float = 5.0) -> None:
    """Wait for queued hook calls, at most ``timeout`` seconds (RQ's work horse, before it exits)."""
    _deliveries.flush(timeout)


atexit.register(flush, 2.0)
