"""Celery: the BYOK context travels in a task header and is restored around the task.

Three signal handlers do the work. The publish handler runs wherever a task is sent,
including inside a running task, so retries, chain steps, chord callbacks and tasks
sent from tasks inherit the context that the worker restored for their parent.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Any

from celery import Celery, Task, signals

from . import keys, report
from .context import ByokContextRequired, attach, current_context, detach
from .header import DEFAULT_MAX_AGE, HEADER, HeaderCodec, HeaderError

__all__ = ["install"]

logger = logging.getLogger(__name__)

_codec: HeaderCodec | None = None
# Where the worker keeps per-task state on the request: the tokens that undo our
# ContextVar changes, and why a header was refused (for the byok_required error).
_TOKENS = "_byok_tokens"
_PROBLEM = "_byok_problem"


def install(
    app: Celery,
    *,
    secret: str | bytes | Sequence[str | bytes] | None = None,
    require_signature: bool = False,
    max_age: float = DEFAULT_MAX_AGE,
    key_store: keys.SealedKeyStore | None = None,
    resolver: keys.Resolver | None = None,
) -> None:
    """Carry the BYOK context through ``app``'s tasks. Call it where the app is created, in
    the web process and the worker alike.

    ``secret`` (else ``BYOK_TASKS_SECRET``) signs headers with HMAC-SHA256; with
    ``require_signature`` the worker ignores unsigned ones, and it ignores any header
    older than ``max_age`` seconds (plus the task's ETA). ``key_store`` and ``resolver``
    say how users' keys reach :func:`byok_tasks.current_key` in the worker. Calling it
    again with the same settings changes nothing; other header settings are an error.
    """
    global _codec
    codec = HeaderCodec.configure(secret, require_signature=require_signature, max_age=max_age)
    keys.configure(store=key_store, resolver=resolver)
    if _codec is None:
        _codec = codec
        signals.before_task_publish.connect(_on_publish, weak=False, dispatch_uid="byok_tasks.publish")
        signals.task_prerun.connect(_on_prerun, weak=False, dispatch_uid="byok_tasks.prerun")
        signals.task_postrun.connect(_on_postrun, weak=False, dispatch_uid="byok_tasks.postrun")
        signals.task_failure.connect(_on_failure, weak=False, dispatch_uid="byok_tasks.failure")
        signals.worker_init.connect(_on_worker_init, weak=False, dispatch_uid="byok_tasks.worker_init")
    elif codec != _codec:
        raise ValueError("byok_tasks.celery.install() was already called in this process with other settings")
    # The worker builds each task's tracer around task.run at start, so the byok_required
    # guard must be in place before then: now for tasks that exist, at finalize for the rest.
    app.on_after_finalize.connect(_guard_app_tasks, weak=False, dispatch_uid="byok_tasks.guard")
    if app.finalized:
        _guard_app_tasks(app)
    if not getattr(app.amqp.send_task_message, "_byok_seals", False):
        app.amqp.send_task_message = _sealing_keys(app.amqp.send_task_message)


def _on_publish(headers: dict[str, Any] | None = None, **_: Any) -> None:
    if headers is None or HEADER in headers:
        return  # a header passed explicitly (or kept by a retry) is the caller's choice
    context = current_context()
    if context is not None and _codec is not None:
        headers[HEADER] = _codec.encode(context, delay=_delay(headers.get("eta")))


def _sealing_keys(send: Callable[..., Any]) -> Callable[..., Any]:
    # Sealing stores keys in Redis and can refuse a task, so it cannot live in the publish
    # signal handler: Celery logs and swallows what signal handlers raise. Here, right
    # before the signal, an error reaches the code that called apply_async.
    @functools.wraps(send)
    def send_task_message(producer: Any, name: str, message: Any, *args: Any, **kwargs: Any) -> Any:
        context = current_context()
        if context is not None and context.keyring is not None and HEADER not in (kwargs.get("headers") or {}):
            store = keys.key_store()
            if store is None:
                raise keys.ByokKeyUnavailable(
                    "keys given to byok_context() need a SealedKeyStore to reach workers: pass key_store= to install()"
                )
            delay = _delay(message.headers.get("eta"))
            if delay > store.ttl:
                raise keys.ByokKeyUnavailable(
                    f"task {name} is scheduled {delay:.0f} s ahead, beyond the {store.ttl:g} s that sealed keys live"
                )
            context.keyring.seal(context.uid, store)
        return send(producer, name, message, *args, **kwargs)

    send_task_message._byok_seals = True  # type: ignore[attr-defined]
    return send_task_message


def _delay(eta: object) -> float:
    """Seconds until a task's ETA (Celery's ISO string), 0 when it has none."""
    if not isinstance(eta, str):
        return 0.0
    try:
        when = datetime.fromisoformat(eta)
    except ValueError:
        return 0.0
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


def _on_prerun(task: Task, task_id: str, **_: Any) -> None:
    request = task.request
    context_token = None
    # In eager mode nothing was published: the caller's context is simply still in force.
    if not request.is_eager and _codec is not None:
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
        context_token = attach(context)
    setattr(request, _TOKENS, (context_token, report.enter_task(task.name)))


def _on_postrun(task: Task, **_: Any) -> None:
    tokens = vars(task.request).pop(_TOKENS, None)
    if tokens is not None:
        context_token, task_token = tokens
        if context_token is not None:
            detach(context_token)
        report.exit_task(task_token)


def _on_failure(sender: Task, exception: BaseException, **_: Any) -> None:
    # Celery sends task_failure only when no retry follows. Exceptions the task declares
    # in `throws` are expected outcomes, not failures to report.
    if not isinstance(exception, sender.throws):
        report.task_failed(exception, "celery")


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
