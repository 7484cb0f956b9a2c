"""The BYOK context: which user's own provider keys the current unit of work runs with.

It lives in a ContextVar so that it follows the code that handles one request or one
task (threads, asyncio tasks and gevent greenlets each see their own) and never the
next one. Framework adapters restore it with :func:`attach` and undo it with
:func:`detach`; application code uses :func:`byok_context`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .redaction import redact

if TYPE_CHECKING:
    from .keys import Keyring

__all__ = [
    "ByokContext",
    "ByokContextRequired",
    "attach",
    "byok_context",
    "current_context",
    "detach",
]

logger = logging.getLogger(__name__)

# Bounds that keep the header small and make a hostile value fail on the web side,
# where the caller sees the error, rather than in a worker.
MAX_UID_LENGTH = 256
MAX_PROVIDERS = 16
_PROVIDER_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,31}")
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class ByokContext:
    """Whose keys a unit of work uses: the user, and the providers called with that user's key.

    ``keyring`` holds the keys themselves where they are known (see :mod:`byok_tasks.keys`);
    it is neither shown nor compared, so a context can be logged and tested as a value.
    """

    uid: str
    providers: frozenset[str] = frozenset()
    keyring: Keyring | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.uid, str) or not self.uid:
            raise ValueError("uid must be a non-empty string")
        if len(self.uid) > MAX_UID_LENGTH or _CONTROL_CHARS.search(self.uid):
            raise ValueError(f"uid must be at most {MAX_UID_LENGTH} printable characters")
        providers = _provider_set(self.providers)
        object.__setattr__(self, "providers", providers)

    def uses_own_key(self, provider: str) -> bool:
        """True when calls to ``provider`` are made with the user's key, not the platform's."""
        return provider in self.providers


class ByokContextRequired(RuntimeError):
    """A task that must run with a user's keys was about to run without a valid BYOK context.

    Raised instead of letting the task fall back to the platform's key. It is not retried:
    a missing context does not appear by waiting.
    """


def refusal(work: str, context: ByokContext | None, problem: str | None) -> ByokContextRequired | None:
    """The error that stops ``work`` (a task or job marked byok_required), or None when ``context`` allows it.

    A context that makes no provider BYOK does not: the work would run on the platform's keys.
    """
    if context is not None and context.providers:
        return None
    if context is not None:
        why = "its context makes no provider BYOK, so it would run on the platform's keys"
    else:
        why = problem or "none was set where it was enqueued"
    return ByokContextRequired(f"{work} requires a BYOK context: {why}")


def _provider_set(providers: Iterable[str]) -> frozenset[str]:
    if isinstance(providers, (str, bytes)):
        raise TypeError("providers must be a collection of provider names, not a single string")
    result = providers if isinstance(providers, frozenset) else frozenset(providers)
    if len(result) > MAX_PROVIDERS:
        raise ValueError(f"at most {MAX_PROVIDERS} providers")
    for name in result:
        if not isinstance(name, str) or not _PROVIDER_NAME.fullmatch(name):
            # Not quoted: a key passed where a provider name belongs must not land in an error.
            raise ValueError("invalid provider name: up to 32 lowercase letters, digits, '_', '.', '-'")
    return result


def provider_name(name: object) -> str:
    """``name`` if it is a well-formed provider name, else ValueError; warns once about a name no table knows.

    Every API that takes a provider name goes through here, so that ``"OpenAI"`` is the
    same error everywhere: a name that never matches a failing call's provider would file
    the user's failures as the platform's, or spend the platform's key.
    """
    if not isinstance(name, str) or not _PROVIDER_NAME.fullmatch(name):
        # Not quoted: a key passed where a provider name belongs must not land in an error.
        raise ValueError("invalid provider name: up to 32 lowercase letters, digits, '_', '.', '-' (like 'openai')")
    _warn_about_unknown(frozenset((name,)))
    return name


# Provider names with a table, and the unknown ones already warned about.
_known_or_warned: set[str] = set()


def _warn_about_unknown(providers: frozenset[str]) -> None:
    # A name no provider table has ("azure" for "azure_openai") matches a failing call's
    # provider only when the call's host is named after it. Said once per name.
    if providers <= _known_or_warned:
        return
    from .providers import GATEWAYS, PROVIDERS  # deferred: the tables import the failure model, which imports us

    known = {table.name for table in (*PROVIDERS, *GATEWAYS)}
    for name in sorted(providers - known - _known_or_warned):
        logger.warning(
            "BYOK provider %r has no table in byok-tasks (%s): its failures count as the user's only when the "
            "failing host is named after it (api.<name>.com), llm_call(...) names it, or register_provider() adds it",
            # A lowercase key passes for a provider name; given in its place, it must not be logged.
            redact(name),
            ", ".join(sorted(known)),
        )
    _known_or_warned.update(known, providers)


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


@contextmanager
def byok_context(
    uid: str, providers: Iterable[str] = (), *, keys: Mapping[str, str] | None = None
) -> Iterator[ByokContext]:
    """Run the enclosed code, and every task it enqueues, for ``uid`` using their own key for ``providers``.

    ``keys`` maps providers to the user's keys when they arrive with the request; those
    providers are BYOK too. The keys stay in this process, or travel sealed
    (:class:`byok_tasks.keys.SealedKeyStore`); never in a task's arguments or headers.
    """
    if isinstance(providers, (str, bytes)):
        raise TypeError("providers must be a collection of provider names, not a single string")
    keyring = None
    if keys:
        from .keys import Keyring

        keyring = Keyring(keys)
    # ByokContext validates the providers (those given, and those with a key) once, here.
    context = ByokContext(uid, frozenset(providers).union(keys or ()), keyring)
    _warn_about_unknown(context.providers)
    token = _current.set(context)
    try:
        yield context
    finally:
        _current.reset(token)
