"""OpenTelemetry: byok-tasks' classification on the span that was active at the failure.

::

    import byok_tasks.otel

    byok_tasks.otel.instrument()            # byok_tasks.otel.instrument(uid=True) adds byok.uid

LLM instrumentations record a failed call as ``error.type = "RateLimitError"``: a user's
exhausted credits and the platform's rate limit look alike, and nothing says whose key
it was. After :func:`instrument`, every classified failure (a task's final one, and each
:func:`byok_tasks.report_llm_error`) sets on the current span (the task's span from
``opentelemetry-instrumentation-celery``, or whatever span the application has open):

- ``error.type``: the reason (``invalid_key``, ``quota``, ``rate_limit``, ...), low-cardinality as the conventions ask;
- ``gen_ai.provider.name``, in the GenAI semantic conventions' vocabulary (``openai``,
  ``aws.bedrock``, ``gcp.gemini``, ``gcp.vertex_ai``, ``azure.ai.openai``, ...), and
  ``gen_ai.request.model`` when known;
- ``byok.source`` (``byok`` or ``platform``), ``byok.reason``, ``byok.retryable``, and
  ``byok.uid`` only with ``uid=True``: span attributes are often readable far more widely than logs;
- status ERROR, except for the failures the user must fix on their own key (the warning
  level of :func:`byok_tasks.report.default_level`): those are not the service's errors.
  (The Celery instrumentation still marks a task that raised as ERROR: the task did fail.)

Every Celery task's span also carries the ``byok.source`` of the context it ran in (and
``byok.uid`` with ``uid=True``), so that the tasks of BYOK users can be found; on the
span of a failure, the failure's own source wins (a BYOK user's task can fail on the
platform's key).

Only ``opentelemetry-api`` is imported: the SDK, exporters and instrumentations are the
application's. Nothing runs for a successful LLM call; per task, one check of the current span.
"""

from __future__ import annotations

import logging
import threading
from contextvars import ContextVar
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Span, StatusCode

from . import report
from .context import current_context
from .failure import LLMFailure

__all__ = ["PROVIDER_NAMES", "instrument", "provider_name", "uninstrument"]

logger = logging.getLogger(__name__)

# byok-tasks' provider names that the GenAI conventions spell differently; the others
# (openai, anthropic, cohere, groq, deepseek, perplexity, ...) are spelled alike.
PROVIDER_NAMES: dict[str, str] = {
    "azure_openai": "azure.ai.openai",
    "bedrock": "aws.bedrock",
    "google": "gcp.gemini",
    "mistral": "mistral_ai",
    "xai": "x_ai",
}
_VERTEX = "gcp.vertex_ai"
_VERTEX_MODULES = ("vertexai", "google.cloud.aiplatform")
# Links of an exception chain looked at for a Vertex AI request: wrappers are few.
_MAX_LINKS = 8

_lock = threading.Lock()
_settings: dict[str, bool] | None = None
# The span id that a failure's attributes went on, in this task or request: the context's
# byok.source, set when the task ends, must not overwrite the failure's.
_failure_span: ContextVar[int] = ContextVar("byok_otel_failure_span", default=0)


def provider_name(failure: LLMFailure, exc: BaseException | None = None) -> str:
    """``gen_ai.provider.name`` for ``failure``: ``gcp.vertex_ai`` for Google failures that
    came through Vertex AI (told by the SDK that raised or the request's host)."""
    if failure.provider == "google" and exc is not None and _through_vertex(exc):
        return _VERTEX
    return PROVIDER_NAMES.get(failure.provider, failure.provider)


def instrument(*, uid: bool = False) -> None:
    """Put every classified failure on the current span, and each Celery task's context on its span.

    Call it once per process, anywhere (before or after ``CeleryInstrumentor().instrument()``).
    ``uid=True`` adds ``byok.uid``. Calling it again with the same settings changes nothing;
    other settings are an error (call :func:`uninstrument` first).
    """
    global _settings
    settings = {"uid": uid}
    with _lock:
        if _settings is not None:
            if settings != _settings:
                raise ValueError("byok_tasks.otel.instrument() was already called in this process with other settings")
            return
        _settings = settings
        observer = _on_failure_with_uid if uid else _on_failure
        report.add_failure_observer(observer)
        _connect_celery(uid)


def uninstrument() -> None:
    """Undo :func:`instrument`."""
    global _settings
    with _lock:
        _settings = None
        report.remove_failure_observer(_on_failure)
        report.remove_failure_observer(_on_failure_with_uid)
        _disconnect_celery()


def _on_failure(failure: LLMFailure, exc: BaseException) -> None:
    _mark(failure, exc, uid=False)


def _on_failure_with_uid(failure: LLMFailure, exc: BaseException) -> None:
    _mark(failure, exc, uid=True)


def _mark(failure: LLMFailure, exc: BaseException, *, uid: bool) -> None:
    span = trace.get_current_span()
    if not span.is_recording():
        return
    attributes: dict[str, str | bool] = {
        "error.type": failure.reason,
        "gen_ai.provider.name": provider_name(failure, exc),
        "byok.source": failure.source,
        "byok.reason": failure.reason,
        "byok.retryable": failure.retryable,
    }
    if failure.model is not None:
        attributes["gen_ai.request.model"] = failure.model
    if uid and failure.uid is not None:
        attributes["byok.uid"] = failure.uid
    span.set_attributes(attributes)
    if report.default_level(failure) == "error":
        span.set_status(StatusCode.ERROR, failure.message)
    _failure_span.set(span.get_span_context().span_id)


def _through_vertex(exc: BaseException) -> bool:
    link: BaseException | None = exc
    for _ in range(_MAX_LINKS):
        if link is None:
            return False
        module = type(link).__module__
        if module.startswith(_VERTEX_MODULES):
            return True
        host = _request_host(link)
        if host is not None and host.endswith("aiplatform.googleapis.com"):
            return True
        link = link.__cause__ or link.__context__
    return False


def _request_host(exc: BaseException) -> str | None:
    # google-genai keeps the httpx response; its request has the URL the SDK called.
    try:
        response = getattr(exc, "response", None)
        request = getattr(exc, "request", None) or getattr(response, "request", None)
        host = getattr(getattr(request, "url", None), "host", None)
    except Exception:  # a hostile exception: not through Vertex, as far as we can tell
        return None
    return host.lower() if isinstance(host, str) else None


# Celery: the task's span is opentelemetry-instrumentation-celery's, started and made
# current in its task_prerun handler. Signal handlers run in the order they were
# connected, and that instrumentation is usually set up in worker_process_init, after
# this module: at our task_prerun its span may not be current yet. The signals of a
# task's end (success, retry, failure) run while it is, whatever the order. The task's
# context is in force at all of them: byok_tasks.celery restores it around the tracer.
_CELERY_SIGNALS = ("task_prerun", "task_success", "task_retry", "task_failure")
_DISPATCH_UID = "byok_tasks.otel"


def _connect_celery(uid: bool) -> None:
    try:
        from celery import signals
    except ImportError:
        return
    handler = _tag_task_with_uid if uid else _tag_task
    for name in _CELERY_SIGNALS:
        getattr(signals, name).connect(handler, weak=False, dispatch_uid=f"{_DISPATCH_UID}.{name}")


def _disconnect_celery() -> None:
    try:
        from celery import signals
    except ImportError:
        return
    for name in _CELERY_SIGNALS:
        getattr(signals, name).disconnect(dispatch_uid=f"{_DISPATCH_UID}.{name}")


def _tag_task(**_: Any) -> None:
    _tag_current_span(uid=False)


def _tag_task_with_uid(**_: Any) -> None:
    _tag_current_span(uid=True)


def _tag_current_span(*, uid: bool) -> None:
    try:
        span: Span = trace.get_current_span()
        if not span.is_recording():
            return
        span_id = span.get_span_context().span_id
        if _failure_span.get() == span_id:
            return  # a failure's own byok.source is on this span
        context = current_context()
        byok = context is not None and bool(context.providers)
        span.set_attribute("byok.source", "byok" if byok else "platform")
        if uid and context is not None:
            span.set_attribute("byok.uid", context.uid)
    except Exception:
        logger.debug("tagging the task's span failed", exc_info=True)
