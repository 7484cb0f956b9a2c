"""Celery: the BYOK context travels in a task header and is restored around the task.

Three signal handlers do the work. The publish handler runs wherever a task is sent,
including inside a running task, so retries, chain steps, chord callbacks and tasks
sent from tasks inherit the context that the worker restored for their parent.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from typing import Any

from celery import Celery, Task, signals

from .context import ByokContextRequired, attach, current_context, detach
from .header import HEADER, HeaderCodec, HeaderError

__all__ = ["install"]

logger = logging.getLogger(__name__)

_codec: HeaderCodec | None = None
# Where the worker keeps per-task state on the request: the token that undoes our
# ContextVar change, and why a header was refused (for the byok_required error).
_TOKEN = "_byok_token"
_PROBLEM = "_byok_problem"


def install(
    app: Celery, *, secret: str | bytes | Sequence[str | bytes] | None = None, require_signature: bool = False
) -> None:
    """Carry the BYOK context through ``app``'s tasks. Call it where the app is created, in
    the web process and the worker alike.

    ``secret`` (else ``BYOK_TASKS_SECRET``) signs headers with HMAC-SHA256; with
    ``require_signature`` the worker ignores unsigned ones. Calling it again with the
    same settings changes nothing; different settings in one process are an error.
    """
    global _codec
    codec = HeaderCodec.configure(secret, require_signature=require_signature)
    if _codec is None:
        _codec = codec
        signals.before_task_publish.connect(_on_publish, weak=False, dispatch_uid="byok_tasks.publish")
        signals.task_prerun.connect(_on_prerun, weak=False, dispatch_uid="byok_tasks.prerun")
        signals.task_postrun.connect(_on_postrun, weak=False, dispatch_uid="byok_tasks.postrun")
        signals.worker_init.connect(_on_worker_init, weak=False, dispatch_uid="byok_tasks.worker_init")
    elif codec != _codec:
        raise ValueError("byok_tasks.celery.install() was already called in this process with other settings")
    # The worker builds each task's tracer around task.run at start, so the byok_required
    # guard must be in place before then: now for tasks that exist, at finalize for the rest.
    app.on_after_finalize.connect(_guard_app_tasks, weak=False, dispatch_uid="byok_tasks.guard")
    if app.finalized:
        _guard_app_tasks(app)


def _on_publish(headers: dict[str, Any] | None = None, **_: Any) -> None:
    if headers is None or HEADER in headers:
        return  # a header passed explicitly (or kept by a retry) is the caller's choice
    context = current_context()
    if context is not None and _codec is not None:
        headers[HEADER] = _codec.encode(context)


def _on_prerun(task: Task, task_id: str, **_: Any) -> None:
    request = task.request
    if request.is_eager or _codec is None:
        return  # nothing was published: the caller's context is simply still in force
    value = _find_header(request)
    context = None
    if value is not None:
        try:
            context = _codec.decode(value)
        except HeaderError as exc:
            logger.warning(
                "task %s[%s]: BYOK header refused, running without a BYOK context: %s", task.name, task_id, exc
            )
            setattr(request, _PROBLEM, str(exc))
    setattr(request, _TOKEN, attach(context))


def _on_postrun(task: Task, **_: Any) -> None:
    token = vars(task.request).pop(_TOKEN, None)
    if token is not None:
        detach(token)


def _find_header(request: Any) -> object | None:
    # Celery exposes custom headers as request attributes and in request.headers;
    # sentry-sdk's Celery integration additionally nests them under headers["headers"].
    value: object | None = request.get(HEADER)
    if value is None and isinstance(request.headers, dict):
        value = request.headers.get(HEADER)
        nested = request.headers.get("headers")
        if value is None and isinstance(nested, dict):
            value = nested.get(HEADER)
    return value


def _on_worker_init(sender: Any = None, **_: Any) -> None:
    app = getattr(sender, "app", None)
    if app is not None:
        _guard_app_tasks(app)


def _guard_app_tasks(sender: Celery, **_: Any) -> None:
    for task in list(sender.tasks.values()):
        if getattr(task, "byok_required", False) and not getattr(task.run, "_byok_guard", False):
            task.run = _guarded_run(task)


def _guarded_run(task: Task) -> Any:
    # Wraps the outermost run (outside autoretry_for), so the refusal is never retried.
    inner = task.run

    @functools.wraps(inner)
    def run(*args: Any, **kwargs: Any) -> Any:
        if current_context() is None:
            request = task.request
            why = getattr(request, _PROBLEM, None) or "none was set where it was enqueued"
            raise ByokContextRequired(f"task {task.name}[{request.id}] requires a BYOK context: {why}")
        return inner(*args, **kwargs)

    run._byok_guard = True  # type: ignore[attr-defined]
    return run
