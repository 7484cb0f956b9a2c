"""A Flask app behind ByokWsgiMiddleware, served by werkzeug in the WSGI tests (see tests/apps/web_server.py)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

from flask import Flask, Response, request

from byok_tasks import current_context, current_key
from byok_tasks.wsgi import ByokWsgiMiddleware
from tests.apps import web_worker
from tests.apps.celery_app import seen

logging.basicConfig(level=logging.INFO)
app = Flask(__name__)


def user_id(environ: dict[str, Any]) -> str | None:
    authorization = str(environ.get("HTTP_AUTHORIZATION", ""))
    return authorization.removeprefix("Bearer ") if authorization.startswith("Bearer ") else None


@app.post("/enqueue/<task>")
def enqueue(task: str) -> dict[str, Any]:
    result = web_worker.app.tasks[task].apply_async(request.args.getlist("arg"))
    return {"id": result.id}


@app.get("/look")
def look() -> dict[str, Any]:
    return {
        "context": seen(),
        "headers": sorted(name.lower() for name, _ in request.headers.items()),
        "openai_key": web_worker.digest(current_key("openai")) if current_context() else None,
    }


@app.get("/stream")
def stream() -> Response:
    def lines() -> Iterator[str]:
        # A plain generator, not stream_with_context: werkzeug iterates it after the view has returned.
        for _ in range(3):
            yield json.dumps(seen()) + "\n"

    return Response(lines(), mimetype="application/x-ndjson")


app.wsgi_app = ByokWsgiMiddleware(app.wsgi_app, uid=user_id)  # type: ignore[method-assign]
