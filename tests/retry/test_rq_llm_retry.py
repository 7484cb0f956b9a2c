"""``byok_tasks.rq.llm_retry`` on real RQ workers: what is retried, when, and what is reported.

The jobs (tests/apps/llm_retry_jobs.py) call the real OpenAI SDK, its own retries off,
against a scripted loopback provider that counts the calls and notes when each arrived.
The workers run RQ's scheduler (``--with-scheduler``), which a retry that waits needs,
and send to a loopback Sentry; each test runs under a user of its own.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from rq import Retry
from rq.job import Job, JobStatus

from byok_tasks import byok_context
from byok_tasks.testing.sentry_collector import SentryCollector
from tests.apps.llm_retry_jobs import (
    BACKOFF,
    MAX_RETRIES,
    plain_failure_job,
    summarize_async_job,
    summarize_job,
    summarize_slow_backoff_job,
)
from tests.retry.provider import FAILURES, NOT_RETRIED, RETRIED, client_timeout
from tests.support.ids import new_uid
from tests.support.processes import failure_records
from tests.support.rq_worker import (  # noqa: F401
    RqWorker,
    RqWorkerFactory,
    finished,
    result_of,
    rq_worker_factory_fixture,
)
from tests.support.scripted_provider import OK, RATE_LIMITED, ScriptedProvider, scripted_provider_fixture  # noqa: F401
from tests.support.sentry import events_where, tags
from tests.support.timing import RETRY_TIMEOUT as TIMEOUT

QUIET = 2.5
# RQ schedules to the whole second, so llm_retry rounds a wait up to where it ends on one
# (up to ROUND more), and RQ's scheduler looks for due jobs once a second (up to POLL more),
# and a loaded machine adds up to LATE (measured: a 1 s retry-after came 2.3 to 2.8 s later).
ROUND = 1.0
POLL = 1.0
LATE = 1.5


@pytest.fixture(scope="module", params=["fork", "simple"])
def worker(
    request: pytest.FixtureRequest, rq_worker_factory: RqWorkerFactory, sentry_collector: SentryCollector
) -> RqWorker:
    worker: RqWorker = rq_worker_factory(request.param, with_scheduler=True, env={"SENTRY_DSN": sentry_collector.dsn})
    return worker


def enqueue(worker: RqWorker, func: Any, *args: Any, uid: str, **options: Any) -> Job:
    with byok_context(uid, ["openai"]):
        return worker.queue.enqueue(func, *args, **options)


def failed(job: Job) -> bool:
    return finished(job, TIMEOUT).get_status() == JobStatus.FAILED


@pytest.mark.parametrize("reason", NOT_RETRIED)
def test_a_failure_that_does_not_clear_by_itself_makes_one_call(
    reason: str, worker: RqWorker, scripted_provider: ScriptedProvider, sentry_collector: SentryCollector
) -> None:
    scripted_provider.script(FAILURES[reason])
    uid = new_uid("retry-rq")
    assert failed(enqueue(worker, summarize_job, scripted_provider.base_url, uid, uid=uid))
    assert scripted_provider.calls_after_quiet(QUIET) == 1
    [event] = events_where(sentry_collector, uid=uid, expect=1)
    assert tags(event)["llm.reason"] == reason


def test_a_quota_failure_is_not_retried_even_when_enqueued_with_rqs_own_retry(
    worker: RqWorker, scripted_provider: ScriptedProvider
) -> None:
    scripted_provider.script(FAILURES["quota"])
    uid = new_uid("retry-rq")
    assert failed(enqueue(worker, summarize_job, scripted_provider.base_url, uid, uid=uid, retry=Retry(max=3)))
    assert scripted_provider.calls_after_quiet(QUIET) == 1


@pytest.mark.parametrize("reason", RETRIED)
def test_a_failure_that_clears_by_itself_is_retried_up_to_max_retries_then_reported_once(
    reason: str, worker: RqWorker, scripted_provider: ScriptedProvider, sentry_collector: SentryCollector
) -> None:
    scripted_provider.script(FAILURES[reason])
    uid = new_uid("retry-rq")
    assert failed(enqueue(worker, summarize_job, scripted_provider.base_url, uid, client_timeout(reason), uid=uid))
    assert scripted_provider.calls_after_quiet(QUIET) == 1 + MAX_RETRIES
    [event] = events_where(sentry_collector, uid=uid, expect=1)
    assert tags(event)["llm.reason"] == reason
    assert len(failure_records(worker, uid)) == 1


def test_a_rate_limit_with_retry_after_1_is_retried_after_about_a_second(
    worker: RqWorker, scripted_provider: ScriptedProvider
) -> None:
    scripted_provider.script(RATE_LIMITED, OK)
    uid = new_uid("retry-rq")
    job = enqueue(worker, summarize_slow_backoff_job, scripted_provider.base_url, uid, uid=uid)
    assert result_of(job, TIMEOUT) == "summary"
    [wait] = scripted_provider.waits()
    assert 1.0 <= wait <= 1.1 + ROUND + POLL + LATE


def test_a_503_is_retried_with_exponential_backoff(worker: RqWorker, scripted_provider: ScriptedProvider) -> None:
    scripted_provider.script(FAILURES["overloaded"])
    uid = new_uid("retry-rq")
    assert failed(enqueue(worker, summarize_job, scripted_provider.base_url, uid, uid=uid))
    first, second = scripted_provider.waits()
    assert BACKOFF / 2 <= first <= BACKOFF + ROUND + POLL + LATE
    assert BACKOFF <= second <= 2 * BACKOFF + ROUND + POLL + LATE


def test_an_exception_that_is_no_llm_failure_keeps_the_jobs_own_retry(worker: RqWorker) -> None:
    marker = uuid.uuid4().hex
    job = enqueue(worker, plain_failure_job, marker, uid=new_uid("retry-rq"), retry=Retry(max=2))
    assert failed(job)
    time.sleep(QUIET)
    runs = [line for line in worker.log().splitlines() if line.startswith(f"ValueError: not an LLM failure {marker}")]
    assert len(runs) == 3


def test_llm_retries_do_not_use_up_the_jobs_own_retry(worker: RqWorker, scripted_provider: ScriptedProvider) -> None:
    # Two rate limits, retried by the policy; then the job's own Retry(max=1) is still whole.
    scripted_provider.script(FAILURES["rate_limit"], FAILURES["rate_limit"], OK)
    uid = new_uid("retry-rq")
    job = enqueue(worker, summarize_job, scripted_provider.base_url, uid, uid=uid, retry=Retry(max=1))
    assert result_of(job, TIMEOUT) == "summary"
    assert Job.fetch(job.id, connection=worker.connection).retries_left == 1


def test_an_async_jobs_llm_failure_is_retried_too(worker: RqWorker, scripted_provider: ScriptedProvider) -> None:
    scripted_provider.script(FAILURES["overloaded"], OK)
    uid = new_uid("retry-rq")
    job = enqueue(worker, summarize_async_job, scripted_provider.base_url, uid, uid=uid)
    assert result_of(job, TIMEOUT) == "summary"
    assert scripted_provider.calls == 2
