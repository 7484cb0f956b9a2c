"""WSGI: each request that brings a user's keys runs under their BYOK context (Flask, Django, any WSGI app).

::

    app.wsgi_app = ByokWsgiMiddleware(app.wsgi_app, uid=user_id)  # Flask

The same contract as :class:`byok_tasks.asgi.ByokAsgiMiddleware`: ``X-BYOK-<Provider>``
headers (configurable) make the keys, ``uid(environ)`` says whose they are (None: nobody),
the application reads them with :func:`byok_tasks.current_key` and the tasks it enqueues
carry the context. Requests without key headers pass through untouched.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterable, Iterator, Mapping
from types import TracebackType
from typing import Any, Protocol

from .asgi import KeyHeaders
from .context import ByokContext, attach

__all__ = ["ByokWsgiMiddleware"]

Environ = dict[str, Any]
ExcInfo = tuple[type[BaseException], BaseException, TracebackType] | tuple[None, None, None]


class StartResponse(Protocol):
    def __call__(
        self, status: str, headers: list[tuple[str, str]], exc_info: ExcInfo | None = ..., /
    ) -> Callable[[bytes], object]: ...


WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]


class ByokWsgiMiddleware:
    """Run each request that brings key headers under the user's BYOK context.

    ``uid(environ)`` returns the authenticated user's id, or None for an anonymous
    request, which then runs without a context even with key headers (logged once). It
    is only called for requests with key headers. ``headers`` maps provider names to
    header names (default :data:`byok_tasks.asgi.DEFAULT_HEADERS`).

    A repeated key header is taken as the server joins it (usually comma-separated: no valid key).
    The key headers are removed from ``environ`` before the application (or an error
    tracker describing the request) sees it. The application and the iteration of its
    response body run in a copy of the server thread's context: the BYOK context covers
    a streamed body to its end, and nothing of it is left in the thread afterwards,
    whether or not the server closes the body.
    """

    def __init__(
        self, app: WSGIApp, *, uid: Callable[[Environ], str | None], headers: Mapping[str, str] | None = None
    ) -> None:
        self.app = app
        self.uid = uid
        self.headers = KeyHeaders(headers)

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        # Built in a frame of its own, so the keys are no local variable of a frame on the stack
        # while the application runs (where an error tracker's stack trace would show them).
        context = self._context_for(environ)
        if context is None:
            return self.app(environ, start_response)
        run = contextvars.copy_context().run
        run(attach, context)
        return _Body(run, run(self.app, environ, start_response))

    def _context_for(self, environ: Environ) -> ByokContext | None:
        keys: dict[str, str] = {}
        for variable in [name for name in environ if name.startswith("HTTP_")]:
            provider = self.headers.provider_for(variable[5:])
            if provider is not None:
                key = str(environ.pop(variable)).strip()
                if key:
                    keys[provider] = key
        if not keys:
            return None
        return self.headers.context(self.uid(environ), keys)


class _Body:
    """The application's response body, produced in the request's context."""

    def __init__(self, run: Callable[..., Any], body: Iterable[bytes]) -> None:
        self._run = run
        self._body = body
        self._iterator: Iterator[bytes] | None = None

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        if self._iterator is None:
            self._iterator = self._run(iter, self._body)
        chunk: bytes = self._run(next, self._iterator)
        return chunk

    def close(self) -> None:
        close = getattr(self._body, "close", None)
        if close is not None:
            self._run(close)
