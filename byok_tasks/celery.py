"""Celery: the BYOK context travels in a task header and is restored around the task.

Signal handlers do the work:

- ``before_task_publish`` writes the header. It runs wherever a task is sent, inside a
  running task too, so retries, chain steps, chord callbacks and tasks sent from tasks
  inherit the context the worker restored for their parent.
- ``task_prerun`` restores the context (and the task's name, for reports); ``task_postrun``
  resets both with their tokens.
- ``task_failure`` reports a task's final LLM failure.

Two wrappers do what a signal cannot, because Celery logs and swallows what signal
handlers raise: around ``send_task_message``, sealing keys can refuse a task; around the
``run`` of a ``byok_required`` task, the task refuses to run without a context.
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Any

from ._extras import needs_extra

with needs_extra(__name__, "Celery", "celery"):
    from celery import Celery, Task, signals
    from celery.exceptions import Ignore, Retry

from . import keys, report
from .context import attach, current_context, detach, refusal
from .header import DEFAULT_MAX_AGE, HEADER, HeaderCodec, why_refused
from .retry import RetryPolicy

__all__ = ["install", "llm_retry"]

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
    if _codec is not None and codec != _codec:
        raise ValueError("byok_tasks.celery.install() was already called in this process with other settings")
    keys.configure(store=key_store, resolver=resolver)
    if _codec is None:
        _codec = codec
        signals.before_task_publish.connect(_on_publish, weak=False, dispatch_uid="byok_tasks.publish")
        signals.task_prerun.connect(_on_prerun, weak=False, dispatch_uid="byok_tasks.prerun")
        signals.task_postrun.connect(_on_postrun, weak=False, dispatch_uid="byok_tasks.postrun")
        signals.task_failure.connect(_on_failure, weak=False, dispatch_uid="byok_tasks.failure")
        signals.worker_init.connect(_on_worker_init, weak=False, dispatch_uid="byok_tasks.worker_init")
    # Celery builds a task's tracer around task.run (at worker start, or at each eager
    # apply), so the byok_required guard goes on as each task is made: those made from now
    # on through the app's task factory, those already made right here. Class-based tasks
    # registered by hand are guarded when a worker starts.
    if not getattr(app._task_from_fun, "_byok_guards", False):
        app._task_from_fun = _guarding_new_tasks(app._task_from_fun)
    for task in list(app._tasks.values()):
        _guard(task)
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
            context.keyring.seal(context.uid, keys.key_store(), delay=_delay(message.headers.get("eta")))
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
            except Exception as exc:
                problem = why_refused(exc)
                logger.warning(
                    "task %s[%s]: BYOK header refused, running without a BYOK context: %s", task.name, task_id, problem
                )
                setattr(request, _PROBLEM, problem)
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
    # Celery sends task_failure only when no retry follows, with a picklable stand-in for
    # the exception: SDK exceptions, which hold HTTP responses, are not picklable. It sends
    # it while handling the original, which is therefore still sys.exc_info()'s.
    raised = sys.exc_info()[1] or exception
    # Exceptions the task declares in `throws` are expected outcomes, not failures to report.
    report.task_failed(raised, "celery", expected=isinstance(raised, sender.throws))


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
        for task in list(app.tasks.values()):
            _guard(task)


def _guarding_new_tasks(task_from_fun: Callable[..., Task]) -> Callable[..., Task]:
    @functools.wraps(task_from_fun)
    def task_from_fun_guarded(*args: Any, **kwargs: Any) -> Task:
        task = task_from_fun(*args, **kwargs)
        _guard(task)
        return task

    task_from_fun_guarded._byok_guards = True  # type: ignore[attr-defined]
    return task_from_fun_guarded


def _guard(task: Task) -> None:
    # The retry policy goes on first, inside the byok_required guard: a refusal is never retried.
    if not getattr(task.run, "_byok_guard", False):
        _apply_llm_retry(task)
    if getattr(task, "byok_required", False) and not getattr(task.run, "_byok_guard", False):
        task.run = _guarded_run(task)


def _guarded_run(task: Task) -> Any:
    # The outermost run (outside autoretry_for), so that the refusal is never retried.
    inner = task.run

    @functools.wraps(inner)
    def run(*args: Any, **kwargs: Any) -> Any:
        request = task.request
        error = refusal(f"task {task.name}[{request.id}]", current_context(), getattr(request, _PROBLEM, None))
        if error is not None:
            raise error
        return inner(*args, **kwargs)

    run._byok_guard = True  # type: ignore[attr-defined]
    return run


# The task attribute that llm_retry() sets through the task's options.
_POLICY = "byok_llm_retry"


def llm_retry(
    max_retries: int = 5,
    *,
    backoff: float = 1.0,
    backoff_max: float = 60.0,
    retry_after_max: float = 60.0,
    jitter: bool = True,
) -> dict[str, Any]:
    """Task options that retry the LLM failures that clear by themselves, and only those::

        @app.task(**byok_tasks.celery.llm_retry(max_retries=5))
        def summarise(doc_id: str) -> str:
            with llm_call("openai"):
                return client.chat.completions.create(...)

    ``rate_limit``, ``overloaded``, ``server_error``, ``timeout`` and ``connection`` are
    retried up to ``max_retries`` times: after the provider's ``retry-after`` when it sent
    one (at most ``retry_after_max`` seconds), else after ``backoff * 2**retries`` seconds
    (at most ``backoff_max``) with jitter. ``quota``, ``invalid_key``, ``permission``,
    ``context_length``, ``content_filter`` and the other reasons fail at once. Either way
    the task's final failure is reported once, as without a policy. Exceptions that are not
    LLM failures keep the task's own behaviour (``autoretry_for``, ``self.retry``, none).

    Give the SDK client ``max_retries=0``: its own retries would multiply these, and hide
    the provider's ``retry-after`` from them. Do not list the SDK's exceptions in the same
    task's ``autoretry_for`` either: Celery would then retry a user's ``quota`` too.
    ``max_retries`` counts the task's retries as Celery does (``request.retries``), those made
    for its other exceptions included. Eagerly (``task.apply()``, ``run_under_byok``) Celery
    retries at once, without the wait: a test still sees every call. The policy works
    through :func:`install`, which must have been called for the app. A class-based task
    takes it as a class attribute: ``byok_llm_retry = byok_tasks.retry.RetryPolicy(...)``.
    """
    policy = RetryPolicy(
        max_retries=max_retries,
        backoff=backoff,
        backoff_max=backoff_max,
        retry_after_max=retry_after_max,
        jitter=jitter,
    )
    return {_POLICY: policy}


def _apply_llm_retry(task: Task) -> None:
    policy = getattr(task, _POLICY, None)
    if not isinstance(policy, RetryPolicy):
        return
    # With autoretry_for, Celery's wrapper calls task._orig_run: ours goes inside it, so an
    # LLM failure is decided here first and reaches autoretry only as Celery's own Retry.
    attribute = "_orig_run" if hasattr(task, "_orig_run") else "run"
    inner = getattr(task, attribute)
    if getattr(inner, "_byok_retries", False):
        return

    @functools.wraps(inner)
    def run_with_llm_retry(*args: Any, **kwargs: Any) -> Any:
        try:
            return inner(*args, **kwargs)
        except (Ignore, Retry):
            raise
        except Exception as exc:
            request = task.request
            decision = policy.decide(exc, request.retries or 0)
            if decision is None or not decision.retry or request.called_directly:
                if decision is not None:
                    logger.info("task %s[%s]: %s", task.name, request.id, decision.why)
                raise
            logger.info("task %s[%s]: %s", task.name, request.id, decision.why)
            # The policy has its own count: the task's max_retries (3 by default) is for its other retries.
            retrying = task.retry(exc=exc, countdown=decision.delay, max_retries=policy.max_retries, throw=False)
            # retry() leaves this behind for autoretry_for, which would then use our count for its own retries.
            vars(task).pop("override_max_retries", None)
            raise retrying from None

    run_with_llm_retry._byok_retries = True  # type: ignore[attr-defined]
    setattr(task, attribute, run_with_llm_retry)
