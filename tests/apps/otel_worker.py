"""A test worker traced with OpenTelemetry: `celery -A tests.apps.otel_worker worker`.

The SDK exports over OTLP/HTTP to ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` (the test's
receiver). ``BYOK_TEST_CELERY_INSTRUMENTOR_AT`` says when opentelemetry-instrumentation-celery
is switched on: ``worker_process_init``, as its documentation does it for prefork (its
signal handlers then run after byok_tasks.otel's), or ``import``, before byok_tasks.otel.
With ``SENTRY_DSN``, sentry-sdk runs in its OTel mode (OTLPIntegration) instead, and the
SDK it sets up exports to the same receiver.
"""

import os
from typing import Any

from celery import signals
from opentelemetry import trace
from opentelemetry.instrumentation.celery import CeleryInstrumentor

import byok_tasks.otel
from tests.apps.celery_app import create_app

ENDPOINT = os.environ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"]

if os.environ.get("SENTRY_DSN"):
    import sentry_sdk
    from sentry_sdk.integrations.celery import CeleryIntegration
    from sentry_sdk.integrations.otlp import OTLPIntegration

    from byok_tasks.sentry import ByokIntegration

    sentry_sdk.init(
        dsn=os.environ["SENTRY_DSN"],
        integrations=[ByokIntegration(), OTLPIntegration(collector_url=ENDPOINT), CeleryIntegration()],
        # Only the integrations that matter here: importing every installed one takes seconds.
        auto_enabling_integrations=False,
    )
else:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": "byok-test-worker"}))
    # Batched, as in production: the SDK restarts the exporting thread in each prefork child.
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=ENDPOINT), schedule_delay_millis=100))
    trace.set_tracer_provider(provider)

if os.environ.get("BYOK_TEST_CELERY_INSTRUMENTOR_AT") == "import":
    CeleryInstrumentor().instrument()

byok_tasks.otel.instrument(uid=bool(os.environ.get("BYOK_TEST_OTEL_UID")))


@signals.worker_process_init.connect(weak=False)
def instrument_celery(**_: Any) -> None:
    if os.environ.get("BYOK_TEST_CELERY_INSTRUMENTOR_AT") != "import":
        CeleryInstrumentor().instrument()


app = create_app(os.environ["BROKER_URL"], os.environ["RESULT_BACKEND"], os.environ["BYOK_TEST_QUEUE"])
