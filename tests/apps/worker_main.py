"""Entry point of the test workers: `celery -A tests.apps.worker_main worker`."""

import os
from collections.abc import Callable
from typing import Any

import redis
from celery import signals

from byok_tasks import current_context
from tests.apps.celery_app import create_app

QUEUE = os.environ["BYOK_TEST_QUEUE"]

if os.environ.get("SENTRY_DSN"):
    import sentry_sdk
    from sentry_sdk.integrations.celery import CeleryIntegration

    from byok_tasks.sentry import ByokIntegration

    sentry_sdk.init(
        dsn=os.environ["SENTRY_DSN"],
        integrations=[
            ByokIntegration(
                storm_budget=int(os.environ.get("BYOK_TEST_STORM_BUDGET", "1")),
                storm_window=float(os.environ.get("BYOK_TEST_STORM_WINDOW", "600")),
            )
        ],
        disabled_integrations=[CeleryIntegration] if os.environ.get("BYOK_TEST_WITHOUT_CELERY_INTEGRATION") else [],
        # Everything Sentry could send, so that the tests see every place a key could hide.
        send_default_pii=True,
        include_local_variables=True,
    )

app = create_app(
    os.environ["BROKER_URL"],
    os.environ["RESULT_BACKEND"],
    QUEUE,
    require_signature=bool(os.environ.get("BYOK_TEST_REQUIRE_SIGNATURE")),
)
_store = redis.Redis.from_url(os.environ["RESULT_BACKEND"])


@signals.worker_init.connect(weak=False)
def count_leaks(**_: Any) -> None:
    # byok-tasks restores a task's context around the function Celery's tracer builder
    # builds (and patches the builder at its own worker_init, connected before this one):
    # wrapped outside it, this sees what outlives a task in its thread or greenlet.
    import celery.app.trace
    import celery.worker.consumer.consumer

    for module in (celery.app.trace, celery.worker.consumer.consumer):
        module.build_tracer = _counting_leaks(module.build_tracer)


def _counting_leaks(build_tracer: Callable[..., Any]) -> Callable[..., Any]:
    def build_counting_tracer(*args: Any, **kwargs: Any) -> Any:
        trace_task = build_tracer(*args, **kwargs)

        def trace_counting_leaks(*call: Any) -> Any:
            try:
                return trace_task(*call)
            finally:
                if current_context() is not None:
                    _store.incr(f"byok-test:{QUEUE}:leaked")

        return trace_counting_leaks

    return build_counting_tracer
