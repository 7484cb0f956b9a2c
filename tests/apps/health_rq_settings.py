"""`rq worker -c tests.apps.health_rq_settings`: the key-health test app (tests/apps/health_worker.py) for RQ."""

from __future__ import annotations

from sentry_sdk.integrations.rq import RqIntegration

import byok_tasks.rq
from tests.apps import health_worker

health_worker._init_sentry([RqIntegration()])
byok_tasks.rq.install(
    key_store=health_worker.KEY_STORE,
    resolver=health_worker.resolve,
    resolver_ttl=0,
    key_health=health_worker.KEY_HEALTH,
)
