"""The trivial task (``return x + 1``) in the variant named by ``BYOK_BENCH_VARIANT``.

The worker (``celery -A benchmarks.apps.trivial worker``) and the publishing process
(benchmarks/_variant.py) build the same app, so both sides of a variant run its hooks:

- ``bare``: Celery alone;
- ``byok`` / ``byok-signed``: ``byok_tasks.celery.install(app)``, without or with a secret;
- ``sentry`` / ``sentry-traced``: sentry-sdk with its CeleryIntegration, errors only or
  tracing every task (``traces_sample_rate=1.0``), sending to ``SENTRY_DSN``;
- ``otel``: OpenTelemetry's CeleryInstrumentor with an SDK TracerProvider whose batch
  processor exports to a discarding exporter.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass

from benchmarks._shared import PROVIDERS, SECRET, UID, VARIANTS
from benchmarks.apps._common import create_app, mark_details, publish_round

# Tasks published per request scope (a peer's transaction or span): the scope's own cost
# belongs to the web request, not to publishing, and a hundred tasks make it negligible.
BATCH = 100

VARIANT = os.environ.get("BYOK_BENCH_VARIANT", "bare")


@dataclass(frozen=True)
class Hooks:
    """How a variant's publisher opens what a web request has open, and pushes out what it buffers."""

    request_scope: Callable[[], AbstractContextManager[object]] = contextlib.nullcontext
    task_scope: Callable[[], AbstractContextManager[object]] = contextlib.nullcontext
    flush: Callable[[], object] = lambda: None


def _byok(signed: bool) -> Hooks:
    import byok_tasks.celery
    from byok_tasks import byok_context

    byok_tasks.celery.install(app, secret=SECRET if signed else None)
    # A fresh context for every task, as for one task per web request: the codec never gets
    # to reuse the header it wrote for the previous task, and the context's own cost counts.
    return Hooks(task_scope=functools.partial(byok_context, UID, PROVIDERS))


def _sentry(traced: bool) -> Hooks:
    import sentry_sdk
    from sentry_sdk.integrations.celery import CeleryIntegration

    sentry_sdk.init(
        dsn=os.environ["SENTRY_DSN"],
        integrations=[CeleryIntegration()],
        # Only the Celery integration: the Redis one would add a breadcrumb (and with tracing,
        # a span) to every broker command, which is not header propagation.
        auto_enabling_integrations=False,
        traces_sample_rate=1.0 if traced else None,
    )
    if not traced:
        # sentry-trace and baggage still travel: the scope's propagation context fills them.
        return Hooks(flush=sentry_sdk.flush)
    return Hooks(
        request_scope=lambda: sentry_sdk.start_transaction(name="POST /summaries", op="http.server"),
        flush=sentry_sdk.flush,
    )


def _otel() -> Hooks:
    from opentelemetry import trace
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    class DiscardingExporter(SpanExporter):
        """Counts the spans and drops them: the cost of shipping them elsewhere is left out."""

        exported = 0

        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            self.exported += len(spans)
            return SpanExportResult.SUCCESS

    exporter = DiscardingExporter()
    provider = TracerProvider()
    # The batch processor restarts its thread in forked pool processes, and the signal
    # handlers connected here are inherited by them: prefork children trace too.
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    CeleryInstrumentor().instrument()  # type: ignore[no-untyped-call]
    mark_details["spans_exported"] = lambda: exporter.exported
    tracer = trace.get_tracer("byok-tasks-benchmark")
    return Hooks(
        request_scope=lambda: tracer.start_as_current_span("POST /summaries", kind=trace.SpanKind.SERVER),
        flush=provider.force_flush,
    )


app = create_app("byok_bench_trivial")


def _add(x: int) -> int:
    return x + 1


add = app.task(name="bench.add", shared=False)(_add)


if VARIANT not in VARIANTS:
    raise SystemExit(f"BYOK_BENCH_VARIANT={VARIANT!r}: expected one of {', '.join(VARIANTS)}")
hooks = {
    "bare": Hooks,
    "byok": lambda: _byok(signed=False),
    "byok-signed": lambda: _byok(signed=True),
    "sentry": lambda: _sentry(traced=False),
    "sentry-traced": lambda: _sentry(traced=True),
    "otel": _otel,
}[VARIANT]()


def publish(tasks: int, send: Callable[[], object]) -> None:
    """``tasks`` calls of ``send``, ``BATCH`` per request scope."""
    for size in [BATCH] * (tasks // BATCH) + [tasks % BATCH] * bool(tasks % BATCH):
        with hooks.request_scope():
            for _ in range(size):
                with hooks.task_scope():
                    send()


def enqueue_round(queue: str, tasks: int, marks_key: str) -> None:
    publish_round(app, queue, marks_key, lambda: publish(tasks, lambda: add.apply_async((1,), queue=queue)))
    hooks.flush()
