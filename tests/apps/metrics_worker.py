"""A test worker exposing byok-tasks' Prometheus counters: `celery -A tests.apps.metrics_worker worker`.

The worker's main process serves ``/metrics`` on ``BYOK_TEST_METRICS_PORT``; its prefork
children count into ``PROMETHEUS_MULTIPROC_DIR``. With ``SENTRY_DSN``, storm control runs.
"""

import os
from typing import Any

from celery import signals

import byok_tasks.prometheus
from tests.apps.celery_app import create_app

if os.environ.get("SENTRY_DSN"):
    import sentry_sdk
    from sentry_sdk.integrations.celery import CeleryIntegration

    from byok_tasks.sentry import ByokIntegration

    sentry_sdk.init(
        dsn=os.environ["SENTRY_DSN"],
        integrations=[ByokIntegration(), CeleryIntegration()],
        # Only the integrations that matter here: importing every installed one takes seconds.
        auto_enabling_integrations=False,
    )

byok_tasks.prometheus.instrument()


@signals.worker_init.connect(weak=False)
def serve_metrics(**_: Any) -> None:
    # worker_init runs in the main process only, before the pool forks its children.
    byok_tasks.prometheus.start_http_server(int(os.environ["BYOK_TEST_METRICS_PORT"]), "127.0.0.1")


app = create_app(os.environ["BROKER_URL"], os.environ["RESULT_BACKEND"], os.environ["BYOK_TEST_QUEUE"])
