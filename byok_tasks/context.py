"""The BYOK context: which user's own provider keys the current unit of work runs with.

It lives in a ContextVar so that it follows the code that handles one request or one
task (threads, asyncio tasks and gevent greenlets each see their own) and never the
next one. Framework adapters restore it with :func:`attach` and undo it with
:func:`detach`; application code uses :func:`byok_context`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from contextvars import ContextVar, Token
from dataclasses import dataclass, field

from .keyring import Keyring
from .names import well_formed_providers
from .providers import warn_about_unknown

__all__ = [
    "ByokContext",
    "attach",
    "byok_context",
    "current_context",
    "detach",
]

logger = logging.getLogger(__name__)

# Bounds that keep the header small and make a hostile value fail on the web side,
# where the caller sees the error, rather than in a worker.
MAX_UID_LENGTH = 256
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")
_set = object.__setattr__  # how a frozen dataclass sets its own fields


@dataclass(frozen=True, slots=True, init=False)
class ByokContext:
    """Whose keys a unit of work uses: the user, and the providers called with that user's key.

    ``keyring`` holds the keys themselves where they are known (see :mod:`byok_tasks.keys`);
    it is neither shown nor compared, so a context can be logged and tested as a value.
    """

    uid: str
    providers: frozenset[str] = frozenset()
    keyring: Keyring | None = field(default=None, repr=False, compare=False)

    # Written out rather than generated with a __post_init__: one is built for every task
    # sent and every header read, and this way costs half as much (1.0 µs against 2.2).
    def __init__(self, uid: str, providers: frozenset[str] = frozenset(), keyring: Keyring | None = None) -> None:
        if not isinstance(uid, str) or not uid:
            raise ValueError("uid must be a non-empty string")
        # isprintable() first: True for almost every uid, and a third of the search's cost.
        if len(uid) > MAX_UID_LENGTH or (not uid.isprintable() and _CONTROL_CHARS.search(uid)):
            raise ValueError(f"uid must be at most {MAX_UID_LENGTH} printable characters")
        _set(self, "uid", uid)
        _set(self, "providers", well_formed_providers(providers))
        _set(self, "keyring", keyring)

    def uses_own_key(self, provider: str) -> bool:
        """True when calls to ``provider`` are made with the user's key, not the platform's."""
        return provider in self.providers


_current: ContextVar[ByokContext | None] = ContextVar("byok_context", default=None)


def current_context() -> ByokContext | None:
    """The BYOK context in force here, or None when the work runs entirely on platform keys."""
    return _current.get()


def attach(context: ByokContext | None) -> Token[ByokContext | None]:
    """Make ``context`` current (None clears it) and return the token that undoes it."""
    return _current.set(context)


def detach(token: Token[ByokContext | None]) -> None:
    """Undo :func:`attach`.

    A token can only be reset in the Context that created it, once. If a framework calls
    us back elsewhere, clearing is the safe answer: no context is better than a stale one.
    """
    try:
        _current.reset(token)
    except (ValueError, RuntimeError):
        _current.set(None)


class byok_context:  # lower case: it reads, and is used, as the function it was
    """Run the enclosed code, and every task it enqueues, for ``uid`` using their own key for ``providers``.

    ``keys`` maps providers to the user's keys when they arrive with the request; those
    providers are BYOK too. The keys stay in this process, or travel sealed
    (:class:`byok_tasks.keys.SealedKeyStore`); never in a task's arguments or headers.
    ``with`` gives the :class:`ByokContext`. Like any context manager made of a function,
    enter each one once. (A class, not a generator: it is entered once per web request.)
    """

    __slots__ = ("_context", "_token")

    def __init__(self, uid: str, providers: Iterable[str] = (), *, keys: Mapping[str, str] | None = None) -> None:
        if isinstance(providers, (str, bytes)):
            raise TypeError("providers must be a collection of provider names, not a single string")
        keyring = Keyring(keys) if keys else None
        # ByokContext validates the providers (those given, and those with a key) once, here.
        self._context = ByokContext(uid, frozenset(providers).union(keys) if keys else frozenset(providers), keyring)
        warn_about_unknown(self._context.providers)

    def __enter__(self) -> ByokContext:
        self._token = _current.set(self._context)
        return self._context

    def __exit__(self, *_: object) -> None:
        _current.reset(self._token)
