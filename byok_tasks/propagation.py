"""What every queue adapter does, written once: the header a task is sent with, the context it runs
under, the ``byok_required`` refusal, and the report of its final failure.

The adapters (:mod:`byok_tasks.celery`, :mod:`byok_tasks.rq`, :mod:`byok_tasks.dramatiq`)
are glue: each finds, through its framework's seams, where a task is sent, where it
starts and ends, and where it fails for good, and calls this module there. Nothing here
imports a framework. This is the adapter API: a new queue adapter needs nothing else.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from contextvars import Token
from datetime import datetime, timedelta, timezone
from typing import Any

from . import health, report, settings
from ._exceptions import ByokContextRequired
from .context import ByokContext, attach, current_context, detach
from .header import DEFAULT_MAX_AGE, HEADER, why_refused
from .keyring import Resolver, SealedKeyStore
from .running import RunningTask, enter_task, exit_task, running_task
from .startup import settings_line

__all__ = [
    "HEADER",
    "Entered",
    "configure",
    "delay_until",
    "enter",
    "flush_before_exit",
    "header_to_send",
    "installed",
    "leave",
    "refusal",
    "restore",
    "seal_keys",
    "start_up_line",
    "succeeded",
    "task_failed",
    "will_be_retried",
]

logger = logging.getLogger("byok_tasks.propagation")

Entered = tuple[Token[ByokContext | None], Token[RunningTask | None]]


def configure(
    framework: str,
    *,
    secret: str | bytes | Sequence[str | bytes] | None = None,
    require_signature: bool = False,
    max_age: float = DEFAULT_MAX_AGE,
    key_store: SealedKeyStore | None = None,
    resolver: Resolver | None = None,
    resolver_ttl: float | None = None,
    resolver_cache_size: int | None = None,
    key_health: health.KeyHealth | None = None,
    notice_sender: Callable[[str, dict[str, Any]], object] | None = None,
) -> bool:
    """Apply an adapter's ``install()`` arguments (see :func:`byok_tasks.settings.configure`); True the first time.

    ``notice_sender(name, kwargs)`` enqueues a task or job by name, for a ``key_health``
    whose user hook is a task name.
    """
    first = settings.configure(
        framework,
        secret=secret,
        require_signature=require_signature,
        max_age=max_age,
        key_store=key_store,
        resolver=resolver,
        resolver_ttl=resolver_ttl,
        resolver_cache_size=resolver_cache_size,
    )
    if key_health is not None:
        health.configure(key_health, sender=notice_sender)
    return first


def installed() -> bool:
    """Whether an adapter's ``install()`` ran in this process: headers are written and read."""
    return settings.current().codec is not None


def seal_keys(delay: float = 0.0) -> None:
    """Seal the current context's keys for a task that starts ``delay`` seconds from now.

    Call it where the application sends the task, not in a hook whose errors the framework
    swallows: it raises :class:`byok_tasks.ByokKeyUnavailable` when the keys cannot reach
    the worker in time, and the task must then not be sent.
    """
    context = current_context()
    if context is not None and context.keyring is not None:
        context.keyring.seal(context.uid, settings.current().key_store, delay=delay)


def header_to_send(delay: float = 0.0) -> str | None:
    """The header for a task sent now, to start ``delay`` seconds from now; None without a context or ``install()``."""
    context = current_context()
    codec = settings.current().codec
    if context is None or codec is None:
        return None
    return codec.encode(context, delay=delay)


def restore(value: object | None, work: Callable[[], str]) -> tuple[ByokContext | None, str | None]:
    """The context a received header carries, and why it was refused if it was.

    A header that cannot be trusted (malformed, tampered, expired, unsigned where a
    signature is required) never stops the worker: the task runs without a context,
    which a ``byok_required`` task refuses, and the warning names ``work()``.
    """
    codec = settings.current().codec
    if value is None or codec is None:
        return None, None
    try:
        return codec.decode(value), None
    except Exception as exc:
        problem = why_refused(exc)
        logger.warning("%s: BYOK header refused, running without a BYOK context: %s", work(), problem)
        return None, problem


def enter(context: ByokContext | None, name: str) -> Entered:
    """Run what follows as task ``name`` under ``context``; :func:`leave` with what this returns."""
    return attach(context), enter_task(name)


def leave(entered: Entered) -> bool:
    """Undo :func:`enter`; True when the task's failure has its event (the caller may need to flush it)."""
    task = running_task()
    reported = task is not None and task.failure_reported
    detach(entered[0])
    exit_task(entered[1])
    return reported


def refusal(work: str, problem: str | None) -> ByokContextRequired | None:
    """The error that stops ``work`` (a task marked byok_required) under the current context, or None.

    A context that makes no provider BYOK does not allow it either: the work would run on
    the platform's keys. ``problem`` is why the task's header was refused, if it was.
    """
    context = current_context()
    if context is not None and context.providers:
        return None
    if context is not None:
        why = "its context makes no provider BYOK, so it would run on the platform's keys"
    else:
        why = problem or "none was set where it was enqueued"
    return ByokContextRequired(f"{work} requires a BYOK context: {why}")


def task_failed(exc: BaseException, framework: str, *, expected: bool = False) -> None:
    """The task failed for good (no retry follows): its LLM failure is logged and reported once."""
    report.task_failed(exc, framework, expected=expected)


def will_be_retried(exc: BaseException) -> None:
    """This run failed and the framework will run the task again: only the last failure is reported."""
    task = running_task()
    if task is not None and report.failure_of(exc) is not None:
        task.failure_reported = True


def succeeded() -> None:
    """The task succeeded: a key handed out with a failing status worked, and its status is ok again."""
    health.task_succeeded()


def flush_before_exit(*, events: bool) -> None:
    """The process is about to leave without running its exit hooks (RQ's work horse): deliver the
    user notices queued here and, when ``events``, send the error tracker's queued events."""
    if events:
        report.flush_events()
    health.flush()


def delay_until(countdown: object = None, eta: object = None) -> float:
    """Seconds until a task starts, from a ``countdown`` in seconds or an ETA (a datetime or ISO string).

    A naive datetime is read as UTC, as Celery does.
    """
    if isinstance(countdown, (int, float)) and not isinstance(countdown, bool):
        return max(0.0, float(countdown))
    if isinstance(eta, str):
        try:
            eta = datetime.fromisoformat(eta)
        except ValueError:
            return 0.0
    if not isinstance(eta, datetime):
        return 0.0
    if eta.tzinfo is None:
        eta = eta.replace(tzinfo=timezone.utc)
    return max(0.0, (eta - datetime.now(timezone.utc)) / timedelta(seconds=1))


def start_up_line() -> str | None:
    """The line a worker logs at start (what it accepts; where keys, events, key health go); None before install()."""
    codec = settings.current().codec
    if codec is None:
        return None
    key_health = health.configured()
    return f"{settings_line(codec)}; " + (f"key health on: {key_health!r}" if key_health else "key health off")
