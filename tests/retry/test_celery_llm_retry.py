"""``byok_tasks.celery.llm_retry`` on a real Celery worker: what is retried, when, and what is reported.

The tasks (tests/apps/llm_retry_jobs.py) call the real OpenAI SDK, its own retries off,
against a scripted loopback provider that counts the calls and notes when each arrived.
The worker sends to a loopback Sentry; each test runs under a user of its own, so its
events are told from the others'.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

import pytest

from byok_tasks import byok_context
from byok_tasks.testing.sentry_collector import SentryCollector
from tests.apps.llm_retry_jobs import BACKOFF, MAX_RETRIES
from tests.retry.provider import FAILURES, NOT_RETRIED, RETRIED, client_timeout
from tests.support.ids import new_uid
from tests.support.processes import failure_records
from tests.support.scripted_provider import OK, RATE_LIMITED, ScriptedProvider, scripted_provider_fixture  # noqa: F401
from tests.support.sentry import events_where, tags
from tests.support.timing import RETRY_TIMEOUT as TIMEOUT

# How long a retry that should not happen is given to show up anyway.
QUIET = 2.0
# Scheduling slack on a shared, loaded machine: a retry may come this much later than planned.
LATE = 1.0


@pytest.fixture(scope="module")
def worker(worker_factory: Any, redis_url: str, sentry_collector: SentryCollector) -> Any:
    return worker_factory(
        redis_url, "threads", app_module="tests.apps.retry_worker", env={"SENTRY_DSN": sentry_collector.dsn}
    )


def send(worker: Any, name: str, *args: Any, uid: str) -> Any:
    with byok_context(uid, ["openai"]):
        return worker.app.send_task(name, args)


def outcome(result: Any) -> Any:
    """The task's outcome as the caller sees it: its result, or the exception it failed with."""
    try:
        return result.get(timeout=TIMEOUT)
    except Exception as exc:
        return exc


def run(worker: Any, name: str, *args: Any, uid: str) -> Any:
    return outcome(send(worker, name, *args, uid=uid))


@pytest.mark.parametrize("reason", NOT_RETRIED)
def test_a_failure_that_does_not_clear_by_itself_makes_one_call(
    reason: str, worker: Any, scripted_provider: ScriptedProvider, sentry_collector: SentryCollector
) -> None:
    scripted_provider.script(FAILURES[reason])
    uid = new_uid("retry")
    run(worker, "retry.summarize", scripted_provider.base_url, uid, uid=uid)
    assert scripted_provider.calls_after_quiet(QUIET) == 1
    [event] = events_where(sentry_collector, uid=uid, expect=1)
    assert tags(event)["llm.reason"] == reason


@pytest.mark.parametrize("reason", RETRIED)
def test_a_failure_that_clears_by_itself_is_retried_up_to_max_retries_then_reported_once(
    reason: str, worker: Any, scripted_provider: ScriptedProvider, sentry_collector: SentryCollector
) -> None:
    scripted_provider.script(FAILURES[reason])
    uid = new_uid("retry")
    outcome = run(worker, "retry.summarize", scripted_provider.base_url, uid, client_timeout(reason), uid=uid)
    assert isinstance(outcome, Exception)
    assert scripted_provider.calls_after_quiet(QUIET) == 1 + MAX_RETRIES
    [event] = events_where(sentry_collector, uid=uid, expect=1)
    assert tags(event)["llm.reason"] == reason
    assert len(failure_records(worker, uid)) == 1


def test_a_rate_limit_with_retry_after_1_is_retried_after_about_a_second(
    worker: Any, scripted_provider: ScriptedProvider
) -> None:
    scripted_provider.script(RATE_LIMITED, OK)
    uid = new_uid("retry")
    assert run(worker, "retry.summarize_slow_backoff", scripted_provider.base_url, uid, uid=uid) == "summary"
    [wait] = scripted_provider.waits()
    # At least what the provider asked for, plus at most 10% jitter and the worker's scheduling.
    assert 1.0 <= wait <= 1.1 + LATE


def test_a_503_is_retried_with_exponential_backoff(worker: Any, scripted_provider: ScriptedProvider) -> None:
    scripted_provider.script(FAILURES["overloaded"])
    uid = new_uid("retry")
    run(worker, "retry.summarize", scripted_provider.base_url, uid, uid=uid)
    first, second = scripted_provider.waits()
    # Equal jitter: between half and all of backoff * 2**retries.
    assert BACKOFF / 2 <= first <= BACKOFF + LATE
    assert BACKOFF <= second <= 2 * BACKOFF + LATE


def test_the_retries_of_a_task_are_logged_without_the_providers_message(
    worker: Any, scripted_provider: ScriptedProvider
) -> None:
    scripted_provider.script(FAILURES["server_error"], OK)
    uid = new_uid("retry")
    result = send(worker, "retry.summarize", scripted_provider.base_url, uid, uid=uid)
    assert outcome(result) == "summary"
    [line] = [line for line in worker.log().splitlines() if f"[{result.id}]: byok openai server_error: retry" in line]
    assert "retry 1 of 2" in line
    assert re.search(r"in \d+\.\d\d s \(backoff with jitter\)", line)
    assert "processing your request" not in line


def test_an_exception_that_is_no_llm_failure_is_not_retried(worker: Any) -> None:
    marker = uuid.uuid4().hex
    outcome = run(worker, "retry.plain_failure", marker, uid=new_uid("retry"))
    assert isinstance(outcome, ValueError)
    time.sleep(QUIET)
    assert worker.log().count(f"not an LLM failure {marker}") >= 1
    assert "Retry in" not in "\n".join(line for line in worker.log().splitlines() if marker in line)


def test_the_tasks_own_autoretry_for_still_retries_its_own_exceptions(
    worker: Any, scripted_provider: ScriptedProvider
) -> None:
    scripted_provider.script(RATE_LIMITED, OK)
    uid = new_uid("retry")
    retries, length = run(worker, "retry.own_autoretry", scripted_provider.base_url, uid, uid=uid)
    # One retry by autoretry_for, one by the policy after the rate limit.
    assert (retries, length, scripted_provider.calls) == (2, len("summary"), 2)
