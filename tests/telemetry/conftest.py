"""Fixtures of the telemetry tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sentry_sdk

from byok_tasks.sentry import ByokIntegration
from byok_tasks.testing.sentry_collector import SentryCollector


@pytest.fixture
def sentry(sentry_collector: SentryCollector) -> Iterator[None]:
    # Only the integration that matters here: importing every installed one takes seconds.
    sentry_sdk.init(
        dsn=sentry_collector.dsn, integrations=[ByokIntegration(storm_budget=1)], auto_enabling_integrations=False
    )
    yield
    sentry_sdk.get_client().close()
    sentry_sdk.init(auto_enabling_integrations=False)  # no DSN: later tests send nothing
