"""Reporting LLM failures: one structured log record for each, and an event for the error tracker.

The log record is written for every failure, so nothing is lost when storm control holds
an event back. The error tracker is plugged in by its integration
(:class:`byok_tasks.sentry.ByokIntegration`) through :func:`set_event_sink`, so that this
module, like the rest of the core, imports no framework.

Telemetry exporters (:mod:`byok_tasks.otel`, :mod:`byok_tasks.prometheus`) plug in the
same way, through :func:`add_failure_observer`: every classified failure goes through the
observers once, where its log record is written.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from dataclasses import replace
from typing import Literal

from . import settings
from .classification import classify
from .failure import CallAnnotations, LLMFailure, Source, annotate
from .providers import provider_name
from .running import running_task
from .settings import EventSink

__all__ = [
    "FailureObserver",
    "HeldBackObserver",
    "add_failure_observer",
    "add_held_back_observer",
    "already_reported",
    "default_level",
    "describe_sink",
    "event_held_back",
    "failure_of",
    "flush_events",
    "mark_reported",
    "remove_failure_observer",
    "remove_held_back_observer",
    "report_llm_error",
    "set_event_sink",
]

logger = logging.getLogger("byok_tasks.failures")

Level = Literal["warning", "error"]
# What the user has to fix with their own key: telling them is the whole remedy.
_USER_ACTION_REASONS = frozenset({"invalid_key", "permission", "quota"})
_LOG_LEVELS = {"warning": logging.WARNING, "error": logging.ERROR}
_REPORTED_ATTRIBUTE = "__byok_reported__"
# Wrappers of wrappers are rare; a cycle of causes must still end.
_MAX_CAUSES = 16


def default_level(failure: LLMFailure) -> Level:
    """``warning`` for a user's own key that the user must fix; ``error`` for everything that is ours."""
    if failure.source == "byok" and failure.reason in _USER_ACTION_REASONS:
        return "warning"
    return "error"


def set_event_sink(sink: EventSink | None) -> None:
    """For the error tracker's integration: send events through ``sink`` from now on."""
    settings.current().sink = sink


def describe_sink() -> str:
    sink = settings.current().sink
    if sink is None:
        return "no error tracker set up: failures are logged only"
    return sink.describe()


def flush_events() -> None:
    sink = settings.current().sink
    if sink is not None:
        sink.flush()


def failure_of(exc: BaseException) -> LLMFailure | None:
    """:func:`classify`, with the running task's name as the feature when the call named none."""
    failure = classify(exc)
    if failure is not None and failure.feature is None and (task := running_task()) is not None:
        failure = replace(failure, feature=task.name)
    return failure


def log_failure(failure: LLMFailure) -> None:
    fields = {
        "source": failure.source,
        "provider": failure.provider,
        "feature": failure.feature,
        "model": failure.model,
        "operation": failure.operation,
        "uid": failure.uid,
        "status": failure.status,
        "reason": failure.reason,
        "error_type": failure.error_type,
        "error": failure.message,
    }
    logger.log(
        _LOG_LEVELS[default_level(failure)],
        "llm failure " + " ".join(f"{name}=%r" for name in fields),
        *fields.values(),
        extra=fields,
    )


def report_llm_error(
    exc: BaseException,
    *,
    provider: str | None = None,
    model: str | None = None,
    feature: str | None = None,
    operation: str | None = None,
    source: Source | None = None,
) -> LLMFailure | None:
    """Report a failure the application handled itself (say, by falling back to the platform key).

    Writes one structured log record and sends one error-tracker event, and returns the
    classification; None when ``exc`` is not an LLM failure. Never raises (but for a malformed
    ``provider``: a typo would file a user's failure as the platform's), and does no I/O
    of its own beyond the logging handlers': events are queued to the tracker's own thread.
    """
    if provider is not None:
        provider_name(provider)
    try:
        annotate(
            exc, CallAnnotations(provider=provider, model=model, feature=feature, operation=operation, source=source)
        )
        failure = failure_of(exc)
        if failure is None:
            return None
        mark_reported(exc)
        log_failure(failure)
        _observe(failure, exc)
        sink = settings.current().sink
        if sink is not None:
            sink.capture_handled(exc)
        return failure
    except Exception:
        logger.debug("reporting an LLM failure failed", exc_info=True)
        return None


def mark_reported(exc: BaseException) -> None:
    """Note that ``exc`` has its log record and event: raised again, it gets no second one."""
    # An exception type without a __dict__ cannot take the mark: it may be reported twice.
    with contextlib.suppress(Exception):
        exc.__dict__[_REPORTED_ATTRIBUTE] = True


def already_reported(exc: BaseException) -> bool:
    """Whether ``exc``, or an exception it was explicitly raised from, was reported."""
    link: BaseException | None = exc
    try:
        for _ in range(_MAX_CAUSES):
            if link is None:
                return False
            if getattr(link, "__dict__", {}).get(_REPORTED_ATTRIBUTE) is True:
                return True
            # Only __cause__: an exception raised while handling a reported one (a fallback
            # that failed too) is a failure of its own.
            link = link.__cause__
    except Exception:  # a hostile exception: better a second report than none
        pass
    return False


def task_failed(exc: BaseException, framework: str, *, expected: bool = False) -> None:
    """A task failed for good (no retry follows). An LLM failure is logged and, unless the
    task declared it ``expected``, captured (when the framework's own integration will not)."""
    try:
        failure = failure_of(exc)
        task = running_task()
        if failure is None:
            return
        if already_reported(exc):
            # The application reported it and raised it again (so does LangChain's
            # with_fallbacks when every model fails): it has its record and its event.
            if task is not None:
                task.failure_reported = True
            return
        log_failure(failure)
        _observe(failure, exc)
        sink = settings.current().sink
        reported = expected or (sink is not None and sink.capture_task_failure(exc, framework))
        if reported and task is not None:
            task.failure_reported = True
    except Exception:
        logger.debug("reporting a task failure failed", exc_info=True)


FailureObserver = Callable[[LLMFailure, BaseException], None]
"""Called once for every classified failure, with the exception it was read from, where its log record is written."""
HeldBackObserver = Callable[[LLMFailure], None]
"""Called when the error tracker's integration holds a failure's event back (storm control)."""

# Tuples replaced whole under the lock: the failure path reads them without locking.
_observers: tuple[FailureObserver, ...] = ()
_held_back_observers: tuple[HeldBackObserver, ...] = ()
_observers_lock = threading.Lock()


def add_failure_observer(observer: FailureObserver) -> None:
    """Call ``observer(failure, exc)`` for every classified failure from now on: a task's final
    failure, and each one :func:`report_llm_error` reports (LangChain's ``report=True`` too).

    The observer runs on the failure path, in the task's thread and context (the task's
    span is current): it must be quick and do no I/O. What it raises is logged at debug
    level and swallowed. Adding the same observer again changes nothing.
    """
    global _observers
    with _observers_lock:
        if observer not in _observers:
            _observers = (*_observers, observer)


def remove_failure_observer(observer: FailureObserver) -> None:
    global _observers
    with _observers_lock:
        _observers = tuple(known for known in _observers if known != observer)


def add_held_back_observer(observer: HeldBackObserver) -> None:
    """Call ``observer(failure)`` each time storm control holds back a failure's event (see
    :func:`event_held_back`); the same rules as for :func:`add_failure_observer`."""
    global _held_back_observers
    with _observers_lock:
        if observer not in _held_back_observers:
            _held_back_observers = (*_held_back_observers, observer)


def remove_held_back_observer(observer: HeldBackObserver) -> None:
    global _held_back_observers
    with _observers_lock:
        _held_back_observers = tuple(known for known in _held_back_observers if known != observer)


def event_held_back(failure: LLMFailure) -> None:
    """For the error tracker's integration: the event of ``failure`` was held back (its record was not)."""
    for observer in _held_back_observers:
        try:
            observer(failure)
        except Exception:
            logger.debug("a held-back observer failed", exc_info=True)


def _observe(failure: LLMFailure, exc: BaseException) -> None:
    # One observer's bug must cost neither the report nor the other observers.
    for observer in _observers:
        try:
            observer(failure, exc)
        except Exception:
            logger.debug("a failure observer failed", exc_info=True)
