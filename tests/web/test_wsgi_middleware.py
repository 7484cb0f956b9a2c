"""ByokWsgiMiddleware's contract in one thread: werkzeug's test client, and the WSGI protocol where a server misbehaves.

The tests with a real server and worker are in tests/web/test_wsgi.py.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest
from werkzeug.test import Client

from byok_tasks import current_context
from byok_tasks.testing.sandbox import sandbox_key
from byok_tasks.wsgi import ByokWsgiMiddleware

KEY = sandbox_key("openai", "ok")


def streaming_app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])

    def body() -> Iterator[bytes]:
        for _ in range(2):
            context = current_context()
            yield (context.uid if context else "nobody").encode() + b"\n"

    return body()


def failing_app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    raise RuntimeError("the application failed")


def bearer(environ: dict[str, Any]) -> str | None:
    value = str(environ.get("HTTP_AUTHORIZATION", ""))
    return value.removeprefix("Bearer ") if value else None


def ignore_start(status: str, headers: list[tuple[str, str]], exc_info: Any = None, /) -> Callable[[bytes], object]:
    return lambda data: None


def environ_for(headers: dict[str, str]) -> dict[str, Any]:
    environ: dict[str, Any] = {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "wsgi.input": None}
    environ.update({"HTTP_" + name.upper().replace("-", "_"): value for name, value in headers.items()})
    return environ


def test_requests_on_one_thread_each_see_their_own_user() -> None:
    client = Client(ByokWsgiMiddleware(streaming_app, uid=bearer))
    bodies = [
        client.get("/", headers={"Authorization": "Bearer alice", "X-BYOK-OpenAI": KEY}).data,
        client.get("/", headers={"Authorization": "Bearer bob"}).data,
    ]
    assert bodies == [b"alice\nalice\n", b"nobody\nnobody\n"]


def test_no_context_is_left_in_the_thread_when_the_server_never_closes_the_body() -> None:
    app = ByokWsgiMiddleware(streaming_app, uid=bearer)
    body = app(environ_for({"Authorization": "Bearer alice", "X-BYOK-OpenAI": KEY}), ignore_start)
    assert list(body) == [b"alice\n", b"alice\n"]
    assert current_context() is None


def test_no_context_is_left_in_the_thread_when_the_application_fails() -> None:
    app = ByokWsgiMiddleware(failing_app, uid=bearer)
    with pytest.raises(RuntimeError, match="the application failed"):
        app(environ_for({"Authorization": "Bearer alice", "X-BYOK-OpenAI": KEY}), ignore_start)
    assert current_context() is None


def test_anonymous_request_with_a_key_runs_without_context_and_is_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = Client(ByokWsgiMiddleware(streaming_app, uid=bearer))
    with caplog.at_level(logging.WARNING, logger="byok_tasks.asgi"):
        bodies = [client.get("/", headers={"X-BYOK-OpenAI": KEY}).data for _ in range(2)]
    assert bodies == [b"nobody\nnobody\n"] * 2
    assert len([r for r in caplog.records if "the uid resolver found no user" in r.getMessage()]) == 1
    assert KEY not in caplog.text
