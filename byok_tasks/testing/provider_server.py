"""A loopback HTTP server that answers like an LLM provider, for tests and sandboxes.

A test scripts what the "provider" answers next — a status with JSON or raw bytes and
headers, a stall longer than the client's timeout, a dropped connection, or one dropped
part-way through the body (:func:`cut_off`) — points the
real SDK at :attr:`ProviderServer.url`, and gets the SDK's real exception::

    with ProviderServer() as server:
        server.reply(json_reply(401, {"error": {"code": "invalid_api_key", ...}}))
        client = openai.OpenAI(base_url=server.url + "/v1", api_key="sk-test", max_retries=0)

Where the provider is told by the request's *host* (OpenRouter, xAI, Azure, Groq's
OpenAI-compatible endpoint), keep the real host on the request and send the bytes here
through the SDK's own HTTP-client hook: :meth:`ProviderServer.transport` builds an
httpx/httpx2 transport for ``http_client=httpx2.Client(transport=...)``. Clients that
speak through an HTTP proxy (botocore) can use :attr:`ProviderServer.url` as the proxy:
the server answers absolute-form requests too.

Standard library only; it binds 127.0.0.1 on a free port and serves each request on its
own thread. Unscripted requests get a 500 that says so, unless a ``respond`` function
answers them.
"""

from __future__ import annotations

import dataclasses
import json
import socket
import threading
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

__all__ = [
    "ProviderServer",
    "RecordedRequest",
    "Reply",
    "closed_port_url",
    "cut_off",
    "hang_up",
    "json_reply",
    "raw_reply",
    "stall",
]


@dataclass(frozen=True, slots=True)
class Reply:
    """One scripted answer. Build it with :func:`json_reply`, :func:`raw_reply`, :func:`stall` or :func:`hang_up`."""

    status: int = 200
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    delay: float = 0.0
    hang_up: bool = False
    cut_after: int | None = None


def json_reply(status: int, payload: object, *, headers: Mapping[str, str] | None = None, delay: float = 0.0) -> Reply:
    """Answer ``status`` with ``payload`` as JSON (a dict, a list or a bare string)."""
    return raw_reply(status, json.dumps(payload), content_type="application/json", headers=headers, delay=delay)


def raw_reply(
    status: int,
    body: str | bytes,
    *,
    content_type: str = "text/plain; charset=utf-8",
    headers: Mapping[str, str] | None = None,
    delay: float = 0.0,
) -> Reply:
    """Answer ``status`` with ``body`` as it is."""
    data = body.encode() if isinstance(body, str) else body
    all_headers = {"Content-Type": content_type, **(headers or {})}
    return Reply(status=status, body=data, headers=tuple(all_headers.items()), delay=delay)


def stall(seconds: float) -> Reply:
    """Answer nothing for ``seconds`` (make it longer than the client's timeout), then a 200."""
    return json_reply(200, {}, delay=seconds)


def hang_up() -> Reply:
    """Close the connection without answering."""
    return Reply(hang_up=True)


def cut_off(reply: Reply, after: int) -> Reply:
    """Answer like ``reply`` but drop the connection after ``after`` bytes of its body: a reset mid-stream."""
    return dataclasses.replace(reply, cut_after=after)


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """A request the server received: what a test can assert the SDK sent."""

    method: str
    host: str
    path: str
    headers: Mapping[str, str]
    body: bytes = field(repr=False)

    def json(self) -> Any:
        return json.loads(self.body)


def closed_port_url() -> str:
    """A loopback URL where nothing listens, for refused connections."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


class ProviderServer:
    """A scripted provider on 127.0.0.1. Use as a context manager, or call start() and stop().

    Scripted replies are used first, in order; when none is left, ``respond`` (if given)
    answers from the request itself — how a sandbox answers every request by its key.
    """

    def __init__(self, respond: Callable[[RecordedRequest], Reply] | None = None, *, port: int = 0) -> None:
        self._respond = respond
        self._replies: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self.requests: list[RecordedRequest] = []
        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), _handler_for(self))
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def reply(self, *replies: Reply) -> None:
        """Queue the answers to the next requests, in order."""
        with self._lock:
            self._replies.extend(replies)

    def reset(self) -> None:
        """Forget queued answers and recorded requests, between tests sharing a server."""
        with self._lock:
            self._replies.clear()
            self.requests.clear()

    def start(self) -> ProviderServer:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="provider-server", daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes stalled handlers
        if self._thread is not None:  # shutdown() waits for a serve loop: only when one runs
            self._httpd.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> ProviderServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def transport(self, httpx_module: Any) -> Any:
        """An httpx (or httpx2) transport that sends every request here, keeping its URL.

        Pass the module (``httpx`` or ``httpx2``); this file imports neither. The request
        object keeps its real scheme, host and path — the SDK's exception and anything
        that inspects ``exc.request.url`` see ``https://openrouter.ai/...`` — while the
        bytes go to this server over plain HTTP.
        """
        port = self.port

        class LoopbackTransport(httpx_module.HTTPTransport):  # type: ignore[misc]
            def handle_request(self, request: Any) -> Any:
                real_url = request.url
                request.url = real_url.copy_with(scheme="http", host="127.0.0.1", port=port)
                try:
                    return super().handle_request(request)
                finally:
                    request.url = real_url

        return LoopbackTransport()

    def _next_reply(self, request: RecordedRequest) -> Reply:
        with self._lock:
            self.requests.append(request)
            if self._replies:
                return self._replies.popleft()
        if self._respond is not None:
            return self._respond(request)
        return json_reply(500, {"error": {"message": f"no scripted reply for {request.method} {request.path}"}})


def _handler_for(server: ProviderServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in separate writes; with Nagle's algorithm on, the body
        # waits for the client's delayed ACK and every call costs 40 ms.
        disable_nagle_algorithm = True

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            target = urlsplit(self.path)  # absolute-form when we are used as a proxy
            host = target.hostname or (self.headers.get("Host") or "").split(":")[0]
            path = target.path + (f"?{target.query}" if target.query else "")
            reply = server._next_reply(
                RecordedRequest(self.command, host, path or "/", dict(self.headers.items()), body)
            )
            if reply.delay and server._stopping.wait(reply.delay):
                return
            if reply.hang_up:
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            self.send_response(reply.status)
            for name, value in reply.headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            try:
                if reply.cut_after is not None:
                    self.wfile.write(reply.body[: reply.cut_after])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.wfile.write(reply.body)
            except OSError:  # the client gave up waiting (a broken pipe or a reset)
                self.close_connection = True

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep test output quiet

    return Handler
