"""Work a task hands to thread pools and asyncio keeps its BYOK context; async code reports failures off its loop."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import openai
import pytest

from byok_tasks import (
    ByokContext,
    byok_context,
    current_context,
    current_key,
    report_llm_error_async,
    submit_with_context,
)
from byok_tasks.keys import generate_encryption_key
from byok_tasks.running import enter_task, exit_task
from byok_tasks.testing.pytest_plugin import FailureRecords
from byok_tasks.testing.sandbox import ProviderSandbox, sandbox_key
from tests.support.celery_worker import Worker
from tests.support.timing import TIMEOUT

ALICE = ["alice", ["openai"]]


def test_thread_pool_work_submitted_with_context_runs_for_the_same_user() -> None:
    key = sandbox_key("openai", "ok")
    with ThreadPoolExecutor(max_workers=2) as pool, byok_context("alice", keys={"openai": key}) as context:
        seen = submit_with_context(pool, lambda: (current_context(), current_key("openai"))).result(TIMEOUT)
    assert seen == (context, key)


def test_async_code_can_await_thread_pool_work_that_keeps_the_context() -> None:
    async def look() -> ByokContext | None:
        with ThreadPoolExecutor(max_workers=1) as pool, byok_context("alice", ["openai"]):
            return await asyncio.wrap_future(submit_with_context(pool, current_context))

    seen = asyncio.run(look())
    assert seen is not None and seen.uid == "alice"


def revoked_key_failure(sandbox: ProviderSandbox, key: str) -> BaseException:
    async def call() -> BaseException:
        client = openai.AsyncOpenAI(api_key=key, base_url=f"{sandbox.url}/v1", max_retries=0)
        try:
            await client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
        except openai.APIError as exc:
            return exc
        finally:
            await client.close()
        raise AssertionError("the sandbox answered a revoked key")

    return asyncio.run(call())


def test_async_report_is_written_off_the_event_loop_for_the_right_user(
    provider_sandbox: ProviderSandbox, llm_failure_records: FailureRecords
) -> None:
    async def report(exc: BaseException) -> int:
        await report_llm_error_async(exc, provider="openai", feature="summaries")
        return threading.get_ident()

    with byok_context("alice", keys={"openai": sandbox_key("openai", "invalid")}):
        loop_thread = asyncio.run(report(revoked_key_failure(provider_sandbox, current_key("openai") or "")))
    [record] = llm_failure_records
    assert (record.source, record.uid, record.reason, record.feature) == (  # type: ignore[attr-defined]
        "byok",
        "alice",
        "invalid_key",
        "summaries",
    )
    assert record.thread != loop_thread


def test_async_report_names_the_running_task(provider_sandbox: ProviderSandbox) -> None:
    exc = revoked_key_failure(provider_sandbox, sandbox_key("openai", "invalid"))

    async def report() -> Any:
        token = enter_task("reports.summarise")
        try:
            return await report_llm_error_async(exc)
        finally:
            exit_task(token)

    failure = asyncio.run(report())
    assert failure is not None and (failure.feature, failure.reason) == ("reports.summarise", "invalid_key")


@pytest.fixture(scope="module", params=["prefork", "threads"])
def worker(request: pytest.FixtureRequest, redis_url: str, worker_factory: Any, key_prefix: str) -> Worker:
    env = {"BYOK_TASKS_ENCRYPTION_KEY": generate_encryption_key(), "BYOK_TEST_KEY_PREFIX": key_prefix}
    worker: Worker = worker_factory(redis_url, request.param, app_module="tests.apps.web_worker", env=env)
    return worker


def test_task_thread_pool_jobs_keep_the_context_when_submitted_with_it(worker: Worker) -> None:
    with byok_context("alice", ["openai"]):
        result = worker.app.send_task("web.threads_see", args=[4])
    carried, plain = result.get(timeout=TIMEOUT)
    assert (carried, plain) == ([ALICE] * 4, None)


def test_task_asyncio_tasks_and_threads_keep_the_context(worker: Worker) -> None:
    with byok_context("alice", ["openai"]):
        result = worker.app.send_task("web.asyncio_sees", args=[4])
    assert result.get(timeout=TIMEOUT) == [[ALICE] * 4, ALICE]
