"""Celery: the BYOK context travels in a task header and is restored around the task.

:func:`install` reads and changes nothing of the app's configuration, connections or
lazily built parts (``app.conf``, ``app.amqp``, the task registry), so it may be called
anywhere: before or after ``config_from_object``, before or after the tasks are defined.
What it hooks, each through the narrowest seam Celery offers:

- The function every app's AMQP builds, on the app's first publish, to send a task
  message (``AMQP._create_task_sender``). It writes the header, for every app of the
  process: wherever a task is sent, inside a running task too, so retries, chain steps,
  chord callbacks and tasks sent from tasks inherit the context the worker restored for
  their parent; and it adds nothing to what ``send_task`` is called with, which the
  application's own code (and tests) may check. It also seals the keys, for the apps
  install() was called on: sealing can refuse a task, and a refusal raised there reaches
  the code that sent it, before anything is sent. Celery's public seam for this,
  ``before_task_publish``, can refuse nothing (Celery logs and swallows what its handlers
  raise), and its dispatch alone cost as much as all the rest of our work per task.
  ``task_failure`` reports a task's final LLM failure; ``worker_ready`` logs the worker's
  settings once.
- Celery's tracer builder, which builds the function a worker runs each task in. The
  context is restored around that function, from the request it is given, and reset when
  it returns: before Celery's own ``task_prerun`` and after its ``task_postrun`` and
  ``task_failure``, so every handler of the task sees the context, and without the two
  signal dispatches per task that handlers of ``task_prerun`` and ``task_postrun`` would
  cost. There too, a ``byok_required`` task's ``run`` is wrapped so that it refuses to run
  without a context, and an ``llm_retry`` task's so that it retries what its policy says:
  no signal can refuse or retry a task. A task made any way at all (decorator, class, late
  registration, eager ``apply``) gets its tracer built there before it runs; the worker's
  consumer, which imports the builder by name, is patched at ``worker_init``.

Each patch carries the marker attribute ``_byok_patched`` so that it is applied once.
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any

from ._extras import needs_extra

with needs_extra(__name__, "Celery", "celery"):
    from celery import Celery, Task, signals
    from celery._state import _get_active_apps
    from celery.app.amqp import AMQP
    from celery.exceptions import Ignore, Retry

from . import propagation
from .context import ByokContext, current_context
from .header import DEFAULT_MAX_AGE, HEADER
from .health import KeyHealth
from .keyring import Resolver, SealedKeyStore
from .retry import RetryPolicy

__all__ = ["install", "llm_retry"]

logger = logging.getLogger(__name__)

# Why a task's header was refused, kept on its request for the byok_required error.
_PROBLEM = "_byok_problem"
_MARKER = "_byok_patched"
# Set on the apps install() was called on: the header is written for every app of the
# process, and a context sent through another app deserves a warning.
_INSTALLED = "_byok_installed"
_warned_uninstalled: set[str] = set()


def install(
    app: Celery,
    *,
    secret: str | bytes | Sequence[str | bytes] | None = None,
    require_signature: bool = False,
    max_age: float = DEFAULT_MAX_AGE,
    key_store: SealedKeyStore | None = None,
    resolver: Resolver | None = None,
    resolver_ttl: float | None = None,
    resolver_cache_size: int | None = None,
    key_health: KeyHealth | None = None,
) -> None:
    """Carry the BYOK context through ``app``'s tasks, in the web process and the worker alike.

    Call it anywhere: it reads nothing of the app's configuration. ``secret`` (else
    ``BYOK_TASKS_SECRET``) signs headers with HMAC-SHA256; with ``require_signature`` the
    worker ignores unsigned ones, and it ignores any header older than ``max_age`` seconds
    (plus the task's ETA). ``key_store`` and ``resolver`` (cached ``resolver_ttl`` seconds,
    default 60, for at most ``resolver_cache_size`` pairs, default 1,024) say how users'
    keys reach :func:`byok_tasks.current_key` in the worker. Calling it again, for this
    app or another, with the same settings changes nothing; other settings are an error.
    """
    propagation.configure(
        "celery",
        secret=secret,
        require_signature=require_signature,
        max_age=max_age,
        key_store=key_store,
        resolver=resolver,
        resolver_ttl=resolver_ttl,
        resolver_cache_size=resolver_cache_size,
        key_health=key_health,
        notice_sender=lambda name, kwargs: app.send_task(name, kwargs=kwargs),
    )
    setattr(app, _INSTALLED, True)
    _connect_signals()
    _patch_tracer_builder()
    _patch_task_sender()


def _connect_signals() -> None:
    # dispatch_uid makes connecting again a no-op.
    signals.task_failure.connect(_on_failure, weak=False, dispatch_uid="byok_tasks.failure")
    signals.worker_init.connect(_on_worker_init, weak=False, dispatch_uid="byok_tasks.worker_init")
    signals.worker_ready.connect(_on_worker_ready, weak=False, dispatch_uid="byok_tasks.worker_ready")


def _patch_task_sender() -> None:
    # Celery builds an app's sender (app.amqp.send_task_message) on its first publish:
    # patched on the class, every app built later has ours, and nothing is built now.
    if not getattr(AMQP._create_task_sender, _MARKER, False):
        create = AMQP._create_task_sender

        @functools.wraps(create)
        def _create_task_sender(amqp: AMQP) -> Any:
            return _with_header(amqp.app, create(amqp))

        setattr(_create_task_sender, _MARKER, True)
        AMQP._create_task_sender = _create_task_sender
    # Apps that published before install() built theirs already; no other seam lists them.
    for app in list(_get_active_apps()):
        amqp = vars(app).get("amqp")
        built = vars(amqp).get("send_task_message") if amqp is not None else None
        if built is not None:
            amqp.send_task_message = _with_header(app, built)


def _with_header(app: Celery, send: Callable[..., Any]) -> Callable[..., Any]:
    if getattr(send, _MARKER, False):
        return send

    @functools.wraps(send)
    def send_task_message(producer: Any, name: str, message: Any, *args: Any, **options: Any) -> Any:
        context = current_context()
        if context is not None:
            # message is Celery's (headers, properties, body, sent_event); the headers the
            # caller passed are merged into them after this.
            _add_header(app, name, context, message[0], options.get("headers"))
        return send(producer, name, message, *args, **options)

    setattr(send_task_message, _MARKER, True)
    return send_task_message


def _add_header(
    app: Celery, name: str, context: ByokContext, headers: dict[str, Any], given: dict[str, Any] | None
) -> None:
    if HEADER in headers or (given and HEADER in given) or not propagation.installed():
        return  # a header passed explicitly (or kept by a retry) is the caller's choice
    eta = headers.get("eta")
    delay = propagation.delay_until(None, eta) if eta else 0.0
    if not getattr(app, _INSTALLED, False):
        # Its keys are not sealed (a sealed-keys task then fails in the worker, never on
        # the platform's key); the header is still written, for the uid and providers.
        _warn_uninstalled_app(name)
    elif context.keyring is not None:
        propagation.seal_keys(delay)
    header = propagation.header_to_send(delay)
    if header is not None:
        headers[HEADER] = header


def _patch_tracer_builder() -> None:
    # Celery's tracer holds the callable that runs a task, read once when the tracer is
    # built: at worker start, in each prefork child, lazily on a task's first run, and at
    # every eager apply. Wrapping run there reaches every task, however it was made.
    import celery.app.trace as trace

    if not getattr(trace.build_tracer, _MARKER, False):
        trace.build_tracer = _guarding(trace.build_tracer)


def _guarding(build_tracer: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(build_tracer)
    def build_guarded_tracer(name: str, task: Task, *args: Any, **kwargs: Any) -> Any:
        _guard(task)
        return _under_context(name, build_tracer(name, task, *args, **kwargs))

    setattr(build_guarded_tracer, _MARKER, True)
    return build_guarded_tracer


def _under_context(name: str, trace_task: Callable[..., Any]) -> Callable[..., Any]:
    if getattr(trace_task, _MARKER, False):
        return trace_task  # built by a builder that wraps ours (another library's patch)

    def trace_under_context(uuid: str, args: Any, kwargs: Any, request: dict[str, Any] | None = None) -> Any:
        if request is not None and request.get("is_eager"):
            # Nothing was published: the caller's context is simply still in force.
            context = current_context()
        else:
            context, problem = propagation.restore(_find_header(request), lambda: f"task {name}[{uuid}]")
            if problem is not None:
                request = {**(request or {}), _PROBLEM: problem}
        entered = propagation.enter(context, name)
        try:
            traced = trace_task(uuid, args, kwargs, request)
            if traced.info is None:  # Celery's trace_ok_t: no failure, retry, ignore or reject
                propagation.succeeded()
            return traced
        finally:
            propagation.leave(entered)

    setattr(trace_under_context, _MARKER, True)
    return trace_under_context


def _warn_uninstalled_app(task_name: str) -> None:
    if task_name in _warned_uninstalled:
        return
    _warned_uninstalled.add(task_name)
    logger.warning(
        "task %s was sent under a BYOK context through a Celery app that byok_tasks.celery.install() was not "
        "called on: call install() on every app that sends tasks, or keys given to byok_context() do not reach "
        "the worker",
        task_name,
    )


def _on_failure(sender: Task, exception: BaseException, **_: Any) -> None:
    # Celery sends task_failure only when no retry follows, with a picklable stand-in for
    # the exception: SDK exceptions, which hold HTTP responses, are not picklable. It sends
    # it while handling the original, which is therefore still sys.exc_info()'s.
    raised = sys.exc_info()[1] or exception
    # Exceptions the task declares in `throws` are expected outcomes, not failures to report.
    propagation.task_failed(raised, "celery", expected=isinstance(raised, sender.throws))


def _find_header(request: dict[str, Any] | None) -> object | None:
    # Celery puts custom headers at the top of the request; sentry-sdk's Celery
    # integration additionally nests them under headers["headers"].
    if request is None:
        return None
    value: object | None = request.get(HEADER)
    if value is not None:
        return value
    headers = request.get("headers")
    if isinstance(headers, dict):
        value = headers.get(HEADER)
        nested = headers.get("headers")
        if value is None and isinstance(nested, dict):
            value = nested.get(HEADER)
    return value


def _on_worker_init(**_: Any) -> None:
    # The worker's consumer imports the tracer builder by name; imported after install()
    # it already has ours, imported before (a test harness that starts workers) it has not.
    consumer: Any = sys.modules.get("celery.worker.consumer.consumer")
    if consumer is not None and not getattr(consumer.build_tracer, _MARKER, False):
        consumer.build_tracer = _guarding(consumer.build_tracer)


def _on_worker_ready(**_: Any) -> None:
    # Not at worker_init: Celery sets up the worker's logging after it.
    line = propagation.start_up_line()
    if line is not None:
        logger.info("%s", line)


def _guard(task: Task) -> None:
    # The retry policy goes on first, inside the byok_required guard: a refusal is never retried.
    if not getattr(task.run, _MARKER, False):
        _apply_llm_retry(task)
    if getattr(task, "byok_required", False) and not getattr(task.run, _MARKER, False):
        task.run = _guarded_run(task)


def _guarded_run(task: Task) -> Any:
    # The outermost run (outside autoretry_for), so that the refusal is never retried.
    inner = task.run

    @functools.wraps(inner)
    def run(*args: Any, **kwargs: Any) -> Any:
        request = task.request
        error = propagation.refusal(f"task {task.name}[{request.id}]", getattr(request, _PROBLEM, None))
        if error is not None:
            raise error
        return inner(*args, **kwargs)

    setattr(run, _MARKER, True)
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
