"""ByokAsgiMiddleware's contract in-process: httpx's ASGI transport for requests, the ASGI protocol for lifespan.

What needs a real server (WebSockets, streaming, tasks on a worker) is in tests/web/test_asgi.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import MutableMapping
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from byok_tasks import current_context, current_key
from byok_tasks.asgi import ByokAsgiMiddleware, Scope
from byok_tasks.testing.sandbox import sandbox_key

KEY = sandbox_key("openai", "ok")


async def look(request: Request) -> JSONResponse:
    context = current_context()
    return JSONResponse(
        {
            "uid": context.uid if context else None,
            "providers": sorted(context.providers) if context else None,
            "has_openai_key": current_key("openai") == KEY if context else None,
        }
    )


async def fail(request: Request) -> JSONResponse:
    raise RuntimeError("the application failed")


starlette_app = Starlette(routes=[Route("/look", look), Route("/fail", fail)])


def bearer(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            return str(value.decode().removeprefix("Bearer "))
    return None


def get(app: Any, path: str, headers: dict[str, str]) -> Any:
    async def request() -> Any:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            return (await client.get(path, headers=headers)).json()

    return asyncio.run(request())


def test_a_plain_function_can_say_who_the_user_is() -> None:
    app = ByokAsgiMiddleware(starlette_app, uid=bearer)
    seen = get(app, "/look", {"Authorization": "Bearer alice", "X-BYOK-OpenAI": KEY})
    assert seen == {"uid": "alice", "providers": ["openai"], "has_openai_key": True}


def test_header_names_can_be_chosen_per_provider() -> None:
    app = ByokAsgiMiddleware(starlette_app, uid=bearer, headers={"openai": "X-User-OpenAI-Key"})
    seen = get(app, "/look", {"Authorization": "Bearer alice", "X-User-OpenAI-Key": KEY, "X-BYOK-OpenAI": "ignored"})
    assert seen == {"uid": "alice", "providers": ["openai"], "has_openai_key": True}


def test_an_empty_key_header_counts_as_absent() -> None:
    app = ByokAsgiMiddleware(starlette_app, uid=bearer)
    assert get(app, "/look", {"Authorization": "Bearer alice", "X-BYOK-OpenAI": " "})["uid"] is None


def test_the_user_is_not_looked_up_for_requests_without_key_headers() -> None:
    asked: list[Scope] = []

    async def resolver(scope: Scope) -> str:
        asked.append(scope)
        return "alice"

    get(ByokAsgiMiddleware(starlette_app, uid=resolver), "/look", {"Authorization": "Bearer alice"})
    assert asked == []


def test_a_resolver_that_returns_no_string_is_a_clear_error() -> None:
    app = ByokAsgiMiddleware(starlette_app, uid=lambda scope: 42)  # type: ignore[arg-type,return-value]
    with pytest.raises(TypeError, match="uid resolver returned an int; it must return a str or None"):
        get(app, "/look", {"X-BYOK-OpenAI": KEY})


def test_the_context_is_reset_when_the_application_fails() -> None:
    app = ByokAsgiMiddleware(starlette_app, uid=bearer)

    async def fail_then_look() -> object:
        with pytest.raises(RuntimeError, match="the application failed"):
            await app(http_scope("/fail", {"authorization": "Bearer alice", "x-byok-openai": KEY}), receive, discard)
        return current_context()

    assert asyncio.run(fail_then_look()) is None


def test_lifespan_events_pass_through_untouched() -> None:
    received: list[MutableMapping[str, Any]] = []

    async def inner(scope: Scope, receive: Any, send: Any) -> None:
        received.append(scope)

    scope: Scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    asyncio.run(ByokAsgiMiddleware(inner, uid=bearer)(scope, receive, discard))
    assert received == [{"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}]


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({"Open AI": "X-BYOK-OpenAI"}, "invalid provider name"),
        ({"openai": "X BYOK OpenAI"}, "invalid header name"),
        ({"openai": "X-Key", "anthropic": "x-key"}, "given for both 'openai' and 'anthropic'"),
        ({}, "no header names"),
    ],
)
def test_a_bad_header_configuration_fails_at_start(headers: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ByokAsgiMiddleware(starlette_app, uid=bearer, headers=headers)


def http_scope(path: str, headers: dict[str, str]) -> Scope:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(name.encode(), value.encode()) for name, value in headers.items()],
        "server": ("testserver", 80),
        "client": ("127.0.0.1", 1234),
    }


async def receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


async def discard(message: MutableMapping[str, Any]) -> None:
    pass
