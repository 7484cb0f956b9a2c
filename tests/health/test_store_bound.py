"""The key-health store stopped, in one process: every call bounded, the breaker open, said once.

Each test runs its own redis-server (``own_redis``) and kills or freezes it; the provider
is the sandbox, its failures reported through ``report_llm_error`` (the failure path's
observers, as a task's final failure goes through them). Also run by ``make test-redis5``:
the bound must hold on redis-py 5.0, which has no timeouts and no retry policy of its own.
"""

from __future__ import annotations

import functools
import logging
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import openai
import pytest

from byok_tasks import ByokKeyRejected, KeyHealth, byok_context, current_key, llm_call, report_llm_error
from byok_tasks import health as byok_health
from byok_tasks.report import failure_of
from byok_tasks.storm import StormControl
from byok_tasks.testing.sandbox import ProviderSandbox, sandbox_key
from tests.support.redis_server import RedisServer, own_redis_fixture  # noqa: F401

SECRET = "a-secret-of-the-store-bound-tests"
BOUND = 0.05  # KeyHealth's default timeout
MARGIN = 0.2  # what a loaded machine adds to it


@pytest.fixture
def health(own_redis: RedisServer) -> Iterator[KeyHealth]:
    # Retried every 0.2 s, so that a test sees the store tried again, on fresh connections.
    found = KeyHealth(own_redis.url, secret=SECRET, threshold=1, cooloff=600, retry_interval=0.2, cache_ttl=0)
    byok_health.configure(found)
    yield found
    byok_health.configure(None)


def timed(call: Callable[[], object]) -> tuple[object, float]:
    started = time.monotonic()
    try:
        answer = call()
    except Exception as exc:
        answer = exc
    return answer, time.monotonic() - started


def provider_failure(sandbox: ProviderSandbox) -> BaseException:
    """The sandbox refusing the current user's key (not reported yet)."""
    client = openai.OpenAI(api_key=current_key("openai"), base_url=f"{sandbox.url}/v1", max_retries=0, timeout=10)
    try:
        with llm_call("openai", model="gpt-4o-mini", feature="summarize"):
            client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    except openai.APIError as exc:
        return exc
    raise AssertionError("the sandbox accepted an invalid key")


@pytest.mark.parametrize("connection", ["pooled", "fresh"])
@pytest.mark.parametrize("fault", ["killed", "frozen"])
def test_every_call_is_bounded_and_the_breaker_fails_open_when_the_store_stops(
    health: KeyHealth,
    own_redis: RedisServer,
    provider_sandbox: ProviderSandbox,
    caplog: pytest.LogCaptureFixture,
    fault: str,
    connection: str,
) -> None:
    key = sandbox_key("openai", "invalid")
    storm = StormControl(budget=1, window=600)
    with byok_context("xena", keys={"openai": key}):
        exc = provider_failure(provider_sandbox)
        report_llm_error(exc)  # threshold 1: the breaker is open
        with pytest.raises(ByokKeyRejected):
            current_key("openai")
        failure = failure_of(exc)
        assert failure is not None
        if connection == "fresh":
            health._store.client.connection_pool.disconnect()  # the next call connects anew
        own_redis.kill() if fault == "killed" else own_redis.freeze()
        caplog.set_level(logging.WARNING, logger=byok_health.__name__)
        slowest: dict[str, float] = {"current_key": 0.0, "failure path": 0.0, "storm budget": 0.0}
        deadline = time.monotonic() + 1.0  # five retry intervals: the store is tried again, and again
        while time.monotonic() < deadline:
            handed, seconds = timed(lambda: current_key("openai"))
            assert handed == key  # the breaker fails open: the provider is called, with the user's key
            slowest["current_key"] = max(slowest["current_key"], seconds)
            refused = provider_failure(provider_sandbox)
            _, seconds = timed(functools.partial(report_llm_error, refused))  # recorded, the notice claimed
            slowest["failure path"] = max(slowest["failure path"], seconds)
            admitted, seconds = timed(lambda: storm.admit(failure))
            assert not isinstance(admitted, Exception)
            slowest["storm budget"] = max(slowest["storm budget"], seconds)
            time.sleep(0.02)
    print(f"\nstore {fault} ({connection}): " + ", ".join(f"{name} {s * 1000:.0f} ms" for name, s in slowest.items()))
    assert all(seconds < BOUND + MARGIN for seconds in slowest.values()), slowest
    said = [record for record in caplog.records if "does not answer" in record.getMessage()]
    assert len(said) == 1
    assert key not in caplog.text


def test_sentry_lists_installed_modules_at_init_so_that_forked_workers_inherit_the_list() -> None:
    # Otherwise each forked child lists them on its first event, on a task's failure path:
    # what made the first tasks after a store outage slow (each process sends its first event).
    script = (
        "import sentry_sdk, sentry_sdk.utils\n"
        "from byok_tasks.sentry import ByokIntegration\n"
        "sentry_sdk.init(integrations=[ByokIntegration()])\n"
        "print(sentry_sdk.utils._installed_modules is not None)\n"
    )
    answer = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=180, check=True)
    assert answer.stdout.strip() == "True"
