from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from byok_tasks.testing.sandbox import ProviderSandbox
from byok_tasks.testing.sentry_collector import SentryCollector
from tests.support import services
from tests.support.celery_worker import Worker, start_worker
from tests.support.redis_keys import removed_after

_redis_note: list[str] = []


def pytest_report_header(config: pytest.Config) -> list[str]:
    required = "required (CI)" if services.services_required() else "optional"
    return [f"services: {required}", *_redis_note]


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    if services.redis_answers(services.REDIS_URL):
        yield services.REDIS_URL
        return
    if services.services_required():
        pytest.fail(f"Redis does not answer at {services.REDIS_URL} and {services.REQUIRE_ENV} is set")
    embedded = services.EmbeddedRedisProcess()
    print(f"\nRedis does not answer at {services.REDIS_URL}: using the embedded server at {embedded.url}")
    try:
        yield embedded.url
    finally:
        embedded.close()


@pytest.fixture(scope="session")
def rabbitmq_url() -> str:
    if services.rabbitmq_answers(services.RABBITMQ_URL):
        return services.RABBITMQ_URL
    reason = f"RabbitMQ does not answer at {services.RABBITMQ_URL}"
    if services.services_required():
        pytest.fail(f"{reason} and {services.REQUIRE_ENV} is set")
    print(f"\n{reason}: skipping the RabbitMQ tests")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def worker_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("worker-logs")


@pytest.fixture(scope="module")
def key_prefix(request: pytest.FixtureRequest, redis_url: str) -> Iterator[str]:
    """A Redis key prefix for the module's sealed keys (``byok-test-<module>:<random>:``), emptied after it."""
    module = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")
    prefix = f"byok-test-{module}:{uuid.uuid4().hex[:8]}:"
    with removed_after(redis_url, prefix + "*"):
        yield prefix


@pytest.fixture(scope="module")
def worker_factory(worker_logs: Path, redis_url: str) -> Iterator[object]:
    """Start workers that live until the end of the module; the same configuration is started once."""
    started: dict[tuple[object, ...], Worker] = {}

    def get(broker_url: str, pool: str, **options: object) -> Worker:
        key = (broker_url, pool, repr(sorted(options.items())))
        worker = started.get(key)
        if worker is None or not worker.alive():
            worker = started[key] = start_worker(broker_url, redis_url, pool, worker_logs, **options)  # type: ignore[arg-type]
        return worker

    yield get
    # All at once: each needs a moment to go.
    for worker in started.values():
        worker.stop_soon()
    for worker in started.values():
        worker.stop()


@pytest.fixture(scope="session")
def provider_sandbox() -> Iterator[ProviderSandbox]:
    """OpenAI and Anthropic on loopback, answering by key (see byok_tasks.testing.sandbox)."""
    with ProviderSandbox() as sandbox:
        yield sandbox


@pytest.fixture(scope="session")
def sentry_collector() -> Iterator[SentryCollector]:
    """A Sentry-protocol collector on loopback: real sentry-sdk clients send their envelopes here."""
    with SentryCollector() as collector:
        yield collector
