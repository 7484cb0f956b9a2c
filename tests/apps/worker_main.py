"""Entry point of the test workers: `celery -A tests.apps.worker_main worker`."""

import os
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


@signals.task_postrun.connect(weak=False)
def count_leaks(**_: Any) -> None:
    # Connected after byok_tasks' own postrun handler, so it sees what outlives a task
    # in this thread or greenlet: the context must be gone by now.
    if current_context() is not None:
        _store.incr(f"byok-test:{QUEUE}:leaked")
