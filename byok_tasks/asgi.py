"""ASGI: each HTTP request and WebSocket connection that brings a user's keys runs under their BYOK context.

Wrap the application (Starlette, FastAPI, any ASGI app)::

    app.add_middleware(ByokAsgiMiddleware, uid=user_id)  # or: app = ByokAsgiMiddleware(app, uid=user_id)

A request with ``X-BYOK-OpenAI: <key>`` (one header per provider, names configurable)
runs under ``byok_context(uid, keys={"openai": <key>})``: the application reads the key
with :func:`byok_tasks.current_key`, and every task it enqueues carries the context (the
keys travel sealed, see :mod:`byok_tasks.keys`). The uid comes from ``uid(scope)``,
the application's own authentication; the library stores no key anywhere.

Requests without key headers, and lifespan events, pass through untouched.
"""

from __future__ import annotations

import inspect
import logging
import re
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any

from ._words import a_value_of_type
from .context import ByokContext, attach, detach
from .keyring import Keyring
from .names import well_formed_providers
from .providers import PROVIDERS

__all__ = ["DEFAULT_HEADERS", "ByokAsgiMiddleware", "KeyHeaders", "UidResolver"]

logger = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
UidResolver = Callable[[Scope], str | Awaitable[str | None] | None]

# ``X-BYOK-OpenAI``, ``X-BYOK-Azure-OpenAI``...: a dash where the provider name has an
# underscore, because proxies such as nginx drop headers with underscores by default.
DEFAULT_HEADERS: Mapping[str, str] = {table.name: "x-byok-" + table.name.replace("_", "-") for table in PROVIDERS}
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # RFC 9110 field-name


class KeyHeaders:
    """Which request header carries the user's key for each provider, and the context they make.

    Shared by :class:`ByokAsgiMiddleware` and :class:`byok_tasks.wsgi.ByokWsgiMiddleware`.
    Header names are case-insensitive (and ``-`` and ``_`` the same, as in WSGI); the first
    of repeated headers counts, and an empty value counts as absent.
    """

    __slots__ = ("_by_header", "_warned")

    def __init__(self, headers: Mapping[str, str] | None = None) -> None:
        headers = DEFAULT_HEADERS if headers is None else headers
        well_formed_providers(headers)  # the same rules as byok_context(): a bad name fails at start, not per request
        by_header: dict[str, str] = {}
        for provider, name in headers.items():
            if not isinstance(name, str) or not _TOKEN.fullmatch(name):
                raise ValueError(f"invalid header name {name!r} for provider {provider!r}")
            normal = _normal(name)
            if normal in by_header:
                raise ValueError(f"header {name!r} is given for both {by_header[normal]!r} and {provider!r}")
            by_header[normal] = provider
        if not by_header:
            raise ValueError("no header names: name at least one provider's key header")
        self._by_header = by_header
        self._warned = False

    def provider_for(self, header: str) -> str | None:
        """The provider whose key ``header`` (any case) carries, if it is one of ours."""
        return self._by_header.get(_normal(header))

    def context(self, uid: object, keys: Mapping[str, str]) -> ByokContext | None:
        """The context for a request that brought ``keys`` and was authenticated as ``uid`` (None: nobody)."""
        if uid is None:
            if not self._warned:
                self._warned = True
                logger.warning(
                    "a request brought BYOK key headers (%s) but the uid resolver found no user: it runs without "
                    "a BYOK context, so current_key() answers None (logged once per process)",
                    ", ".join(sorted(keys)),
                )
            return None
        if not isinstance(uid, str):
            raise TypeError(f"the uid resolver returned {a_value_of_type(uid)}; it must return a str or None")
        return ByokContext(uid, frozenset(keys), Keyring(keys))


def _normal(header: str) -> str:
    # WSGI servers write both "-" and "_" as "_" in environ keys: the two cannot be told apart.
    return header.lower().replace("_", "-")


class ByokAsgiMiddleware:
    """Run each HTTP request and WebSocket connection that brings key headers under the user's BYOK context.

    ``uid(scope)`` (plain or async) returns the authenticated user's id, or None for an
    anonymous request, which then runs without a context even with key headers (logged
    once). It is only called for requests with key headers; a plain function runs on the
    event loop, so one that does I/O should be async. ``headers`` maps provider names to
    header names (default :data:`DEFAULT_HEADERS`, ``X-BYOK-<Provider>``).

    The key headers are removed from ``scope["headers"]`` before anything sees it, this
    middleware's callers included, so that neither the application nor an error tracker
    recording the request copies the keys. The context lasts as long as the application
    call: the whole WebSocket connection, and a streamed body to its end.
    """

    def __init__(self, app: ASGIApp, *, uid: UidResolver, headers: Mapping[str, str] | None = None) -> None:
        self.app = app
        self.uid = uid
        self.headers = KeyHeaders(headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        # Built in a frame of its own: the keys are never a local variable of a frame that is on
        # the stack while the application runs, so an error tracker's stack trace cannot show them.
        context = await self._context_for(scope)
        if context is None:
            await self.app(scope, receive, send)
            return
        token = attach(context)
        try:
            await self.app(scope, receive, send)
        finally:
            detach(token)

    async def _context_for(self, scope: Scope) -> ByokContext | None:
        keys = _take_keys(scope, self.headers)
        if not keys:
            return None
        uid = self.uid(scope)
        if inspect.isawaitable(uid):
            uid = await uid
        return self.headers.context(uid, keys)


def _take_keys(scope: Scope, headers: KeyHeaders) -> dict[str, str]:
    """The keys in the request's headers, which are taken out of the scope."""
    keys: dict[str, str] = {}
    kept: list[tuple[bytes, bytes]] = []
    found = False
    for name, value in scope.get("headers") or ():
        provider = headers.provider_for(name.decode("latin-1"))
        if provider is None:
            kept.append((name, value))
            continue
        found = True
        key = value.decode("latin-1").strip()
        if key and provider not in keys:
            keys[provider] = key
    if found:
        # Replaced in the scope object the server created, which the middleware around this
        # one (an error tracker's, typically) reads when it describes the request.
        scope["headers"] = kept
    return keys
