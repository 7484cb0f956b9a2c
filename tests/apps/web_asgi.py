"""A Starlette app behind ByokAsgiMiddleware, served by uvicorn in the ASGI tests (see tests/apps/web_server.py).

Authentication stands in as ``Authorization: Bearer <uid>``: the middleware only asks the
application who the user is. With ``SENTRY_DSN`` set, a real sentry-sdk client (Starlette
integration and ByokIntegration) reports the app's errors there.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import AsyncIterator
from typing import Any

import sentry_sdk
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from byok_tasks import current_context, current_key
from byok_tasks.asgi import ByokAsgiMiddleware, Scope
from byok_tasks.sentry import ByokIntegration
from tests.apps import web_worker
from tests.apps.celery_app import seen

logging.basicConfig(level=logging.INFO)
if os.environ.get("SENTRY_DSN"):
    sentry_sdk.init(dsn=os.environ["SENTRY_DSN"], integrations=[ByokIntegration()])


async def user_id(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization" and value.startswith(b"Bearer "):
            return str(value[len(b"Bearer ") :].decode())
    return None


def enqueue(request: Request) -> JSONResponse:
    # A plain function: Starlette runs it in its thread pool, where the context must follow too.
    task = web_worker.app.tasks[request.path_params["task"]]
    queue = request.query_params.get("queue")
    result = task.apply_async(list(request.query_params.getlist("arg")), queue=queue)
    return JSONResponse({"id": result.id})


async def look(request: Request) -> JSONResponse:
    """What the application sees: the context, the request's header names, and the OpenAI key's digest."""
    context = current_context()
    return JSONResponse(
        {
            "context": seen(),
            "headers": sorted(request.headers.keys()),
            "openai_key": web_worker.digest(current_key("openai")) if context else None,
        }
    )


async def stream(request: Request) -> StreamingResponse:
    async def lines() -> AsyncIterator[str]:
        for _ in range(3):
            await asyncio.sleep(0.01)  # each chunk after the handler has returned
            yield json.dumps(seen()) + "\n"

    return StreamingResponse(lines(), media_type="application/x-ndjson")


async def fail(request: Request) -> JSONResponse:
    if current_key("mistral") is not None:
        raise RuntimeError("the handler failed while holding a mistral key")
    return JSONResponse({})


async def socket(websocket: WebSocket) -> None:
    await websocket.accept()
    try:
        while True:
            message = await websocket.receive_text()
            answer: Any = seen() if message == "seen" else web_worker.whoami.delay().id
            await websocket.send_text(json.dumps(answer))
    except WebSocketDisconnect:
        pass


app = Starlette(
    routes=[
        Route("/enqueue/{task}", enqueue, methods=["POST"]),
        Route("/look", look),
        Route("/stream", stream),
        Route("/fail", fail),
        WebSocketRoute("/ws", socket),
    ],
    middleware=[Middleware(ByokAsgiMiddleware, uid=user_id)],
)
