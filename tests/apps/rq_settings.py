"""The settings module of the test workers: ``rq worker -c tests.apps.rq_settings``.

RQ imports it once at start, before the worker forks anything, which makes it the place
for ``byok_tasks.rq.install()`` and ``sentry_sdk.init()``, as in an application's own.
Everything comes from the environment that tests/support/rq_worker.py sets.
"""

from __future__ import annotations

import functools
import logging
import os
from typing import Any

import redis
from rq.worker import SimpleWorker

import byok_tasks.rq
from byok_tasks import current_context
from byok_tasks.keys import ENCRYPTION_KEY_ENV, SealedKeyStore

REDIS_URL = os.environ["BYOK_TEST_RQ_REDIS_URL"]
QUEUE = os.environ["BYOK_TEST_QUEUE"]

# byok_tasks' warnings (a refused header) go to the worker's log, next to RQ's own lines.
logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s: %(message)s")

byok_tasks.rq.install(
    require_signature=bool(os.environ.get("BYOK_TEST_REQUIRE_SIGNATURE")),
    key_store=SealedKeyStore(REDIS_URL, prefix=os.environ["BYOK_TEST_KEY_PREFIX"])
    if os.environ.get(ENCRYPTION_KEY_ENV)
    else None,
    resolver=(lambda uid, provider: f"sk-proj-resolved-{provider}-{uid}")
    if os.environ.get("BYOK_TEST_RESOLVER")
    else None,
)

if os.environ.get("SENTRY_DSN"):
    import time

    import sentry_sdk
    from sentry_sdk.integrations.rq import RqIntegration
    from sentry_sdk.transport import HttpTransport

    from byok_tasks.sentry import ByokIntegration

    class DistantSentryTransport(HttpTransport):
        """sentry-sdk's own transport, slowed by the round trip to a Sentry across the internet.

        On loopback an event is sent within a millisecond; a real Sentry takes a hundred or
        more, which is when a work horse that exits without flushing loses its events.
        """

        def _send_request(self, *args: Any, **kwargs: Any) -> None:
            time.sleep(float(os.environ.get("BYOK_TEST_SENTRY_LATENCY") or 0))
            super()._send_request(*args, **kwargs)

    sentry_sdk.init(
        dsn=os.environ["SENTRY_DSN"],
        transport=DistantSentryTransport,
        integrations=[ByokIntegration()],
        disabled_integrations=[RqIntegration] if os.environ.get("BYOK_TEST_SENTRY_RQ") == "off" else [],
    )

if os.environ.get("BYOK_TEST_METRICS"):
    # Counted in each work horse, into PROMETHEUS_MULTIPROC_DIR.
    import byok_tasks.prometheus

    byok_tasks.prometheus.instrument()

_store = redis.Redis.from_url(REDIS_URL)
_perform_job = SimpleWorker.perform_job


@functools.wraps(_perform_job)
def _perform_job_counting_leaks(self: SimpleWorker, *args: Any, **kwargs: Any) -> bool:
    # Wraps byok_tasks' own wrapper, so it sees what outlives a job in the SimpleWorker's
    # process: the context must be gone after each job, and must not be there before one.
    leaked = current_context() is not None
    try:
        return bool(_perform_job(self, *args, **kwargs))
    finally:
        if leaked or current_context() is not None:
            _store.incr(f"byok-test-rq:{QUEUE}:leaked")


_simple_worker: Any = SimpleWorker
_simple_worker.perform_job = _perform_job_counting_leaks
