"""The Celery app the propagation tests run: tasks that report the BYOK context they see.

Worker processes build it from the environment (tests/apps/worker_main.py); the test
process builds the same app with create_app() to publish to them.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import httpx2
import openai
import redis
from celery import Celery
from celery.exceptions import Ignore, Reject

import byok_tasks.celery
from byok_tasks import current_context, llm_call, report_llm_error
from byok_tasks.testing.sandbox import Scenario, sandbox_key


def seen() -> list[Any] | None:
    """The context as a task sees it, in a form that survives the result backend."""
    context = current_context()
    return None if context is None else [context.uid, sorted(context.providers)]


# One connection pool for every per-user client, as a BYOK worker would keep it: building
# an HTTP client (its TLS context) per call costs tens of milliseconds.
_http = httpx2.Client()


def call_openai(scenario: Scenario) -> str:
    """A real OpenAI SDK call to the loopback sandbox; ``scenario`` picks its fate (see sandbox_key)."""
    # The key is made here, in the worker, so that it never travels in the task's arguments.
    client = openai.OpenAI(
        api_key=sandbox_key("openai", scenario),
        base_url=os.environ.get("OPENAI_BASE_URL"),
        max_retries=0,
        http_client=_http,
    )
    completion = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Summarise: we met and agreed."}]
    )
    return completion.choices[0].message.content or ""


def create_app(
    broker_url: str, backend_url: str, queue: str, *, secret: str | None = None, require_signature: bool = False
) -> Celery:
    app = Celery("byok_test", broker=broker_url, backend=backend_url, set_as_current=False)
    app.conf.update(
        task_default_queue=queue,
        result_expires=600,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=True,
    )
    byok_tasks.celery.install(app, secret=secret, require_signature=require_signature)
    _register_tasks(app, backend_url)
    return app


# Retries wait a second: with no wait, the next attempt can finish before the attempt that
# retried records RETRY, and that late RETRY then replaces the final state in the result
# backend (Celery reads, then writes), so the result never becomes ready.
RETRY_WAIT = 1


def _register_tasks(app: Celery, backend_url: str) -> None:
    @app.task(shared=False, name="whoami")
    def whoami() -> list[Any] | None:
        return seen()

    @app.task(shared=False, name="whoami_required", byok_required=True)
    def whoami_required() -> list[Any] | None:
        return seen()

    @app.task(shared=False, name="retry_then_whoami", bind=True, max_retries=3)
    def retry_then_whoami(self: Any) -> list[Any]:
        if self.request.retries < 2:
            raise self.retry(countdown=RETRY_WAIT)
        return [seen(), self.request.retries]

    @app.task(
        shared=False,
        name="autoretry_then_whoami",
        bind=True,
        autoretry_for=(ConnectionError,),
        retry_kwargs={"countdown": RETRY_WAIT, "max_retries": 3},
    )
    def autoretry_then_whoami(self: Any) -> list[Any]:
        if self.request.retries < 2:
            raise ConnectionError("the provider is briefly unreachable")
        return [seen(), self.request.retries]

    @app.task(
        shared=False, name="required_with_autoretry", byok_required=True, autoretry_for=(Exception,), max_retries=3
    )
    def required_with_autoretry() -> list[Any] | None:
        return seen()

    @app.task(shared=False, name="start_trail")
    def start_trail() -> list[Any]:
        return [seen()]

    @app.task(shared=False, name="extend_trail")
    def extend_trail(trail: list[Any]) -> list[Any]:
        return [*trail, seen()]

    @app.task(shared=False, name="collect")
    def collect(results: list[Any]) -> dict[str, Any]:
        return {"header": results, "callback": seen()}

    @app.task(shared=False, name="spawn_whoami")
    def spawn_whoami() -> str:
        return str(whoami.delay().id)

    @app.task(shared=False, name="crash_once", acks_late=True, reject_on_worker_lost=True)
    def crash_once(marker: str) -> list[Any]:
        # The first delivery parks here until the test SIGKILLs this process; the
        # redelivered message then finds attempts == 2 and answers.
        store = redis.Redis.from_url(backend_url)
        attempts = store.incr(f"byok-test:{marker}:attempts")
        store.set(f"byok-test:{marker}:pid", os.getpid())
        if attempts == 1:
            time.sleep(120)
        return [seen(), attempts]

    @app.task(shared=False, name="llm.summarize")
    def summarize(scenario: Scenario) -> str:
        with llm_call("openai", model="gpt-4o-mini"):
            return call_openai(scenario)

    @app.task(
        shared=False,
        name="llm.summarize_with_retries",
        bind=True,
        autoretry_for=(openai.APIError,),
        retry_kwargs={"countdown": RETRY_WAIT, "max_retries": 2},
    )
    def summarize_with_retries(self: Any, failing_attempts: int) -> str:
        scenario: Scenario = "invalid" if self.request.retries < failing_attempts else "ok"
        with llm_call("openai", model="gpt-4o-mini"):
            return call_openai(scenario)

    class CleansUp(app.Task):  # type: ignore[name-defined,misc]
        # Celery calls after_return once the failure is reported and logged.
        def after_return(self, status: str, retval: Any, task_id: str, *args: Any) -> None:
            logging.getLogger("tests.cleanup").error("cleanup after task %s did not finish", task_id)

    @app.task(shared=False, name="llm.summarize_then_clean_up", base=CleansUp)
    def summarize_then_clean_up() -> str:
        with llm_call("openai", model="gpt-4o-mini"):
            return call_openai("invalid")

    @app.task(shared=False, name="llm.expected_failure", throws=(openai.AuthenticationError,))
    def expected_failure() -> str:
        return call_openai("invalid")

    @app.task(shared=False, name="llm.ignored")
    def ignored() -> str:
        try:
            return call_openai("invalid")
        except openai.APIError:
            raise Ignore() from None

    @app.task(shared=False, name="llm.rejected")
    def rejected() -> str:
        try:
            return call_openai("invalid")
        except openai.APIError as exc:
            raise Reject(exc, requeue=False) from None

    @app.task(shared=False, name="llm.handled")
    def handled() -> str:
        try:
            return call_openai("invalid")
        except openai.APIError as exc:
            report_llm_error(exc, provider="openai", feature="summary_with_fallback")
            return "fallback"

    @app.task(shared=False, name="llm.reported_then_raised")
    def reported_then_raised() -> str:
        try:
            return call_openai("invalid")
        except openai.APIError as exc:
            report_llm_error(exc, provider="openai", feature="summary")
            raise

    @app.task(shared=False, name="llm.key_in_a_local")
    def key_in_a_local() -> str:
        key = sandbox_key("openai", "invalid")  # a stack-frame local Sentry would send as it is
        client = openai.OpenAI(api_key=key, base_url=os.environ.get("OPENAI_BASE_URL"), max_retries=0)
        try:
            client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
        except openai.APIError as exc:
            raise RuntimeError(f"summary failed with key {key}") from exc
        return "unreachable"

    @app.task(shared=False, name="plain.failure")
    def plain_failure(marker: str) -> None:
        raise ValueError(f"not an LLM failure {marker}")
