"""Publishes two tasks as a web process in sentry-sdk's OTel mode would, and prints what it sent.

`python -m tests.apps.otel_publisher UID`: sentry-sdk with OTLPIntegration (its propagator,
its exporter to ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) and its Celery integration, plus
opentelemetry-instrumentation-celery; under a span and a BYOK context for UID, sends
``whoami`` and a failing ``llm.summarize``, and prints JSON with their ids and results.
"""

import json
import os
import sys

import sentry_sdk
from opentelemetry import trace
from opentelemetry.instrumentation.celery import CeleryInstrumentor
from sentry_sdk.integrations.celery import CeleryIntegration
from sentry_sdk.integrations.otlp import OTLPIntegration

from byok_tasks import byok_context
from byok_tasks.sentry import ByokIntegration
from tests.apps.celery_app import create_app

sentry_sdk.init(
    dsn=os.environ["SENTRY_DSN"],
    integrations=[
        ByokIntegration(),
        OTLPIntegration(collector_url=os.environ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"]),
        CeleryIntegration(),
    ],
    # Only the integrations that matter here: importing every installed one takes seconds.
    auto_enabling_integrations=False,
)
CeleryInstrumentor().instrument()
app = create_app(os.environ["BROKER_URL"], os.environ["RESULT_BACKEND"], os.environ["BYOK_TEST_QUEUE"])

uid = sys.argv[1]
with trace.get_tracer("publisher").start_as_current_span("request") as span, byok_context(uid, ["openai"]):
    whoami = app.send_task("whoami")
    summarize = app.send_task("llm.summarize", ("invalid",))
result = whoami.get(timeout=30)
summarize.get(timeout=30, propagate=False)
trace.get_tracer_provider().force_flush()  # type: ignore[attr-defined]
sentry_sdk.flush()
print(
    json.dumps(
        {
            "whoami": result,
            "whoami_id": whoami.id,
            "summarize_id": summarize.id,
            "trace_id": f"{span.get_span_context().trace_id:032x}",
        }
    )
)
