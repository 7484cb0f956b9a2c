"""byok_tasks.otel in real prefork Celery workers traced by opentelemetry-instrumentation-celery.

Workers export their spans with the real OTLP/HTTP exporter to a loopback receiver that
parses the protobuf; the test process publishes through the same instrumentation, its
spans kept by the SDK's in-memory exporter. Tasks call the real OpenAI SDK against the
loopback sandbox.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.instrumentation.celery import CeleryInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from byok_tasks import byok_context
from byok_tasks.testing.sandbox import ProviderSandbox
from byok_tasks.testing.sentry_collector import SentryCollector
from tests.support.celery_worker import SECRET
from tests.support.ids import new_uid
from tests.support.otlp_receiver import OtlpReceiver, ReceivedSpan
from tests.support.processes import ROOT, environment
from tests.support.sentry import events_where, tags
from tests.support.timing import TIMEOUT

ERROR = 2


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as receiver:
        yield receiver


@pytest.fixture(scope="module")
def published() -> Iterator[InMemorySpanExporter]:
    """The test process's own publish spans, whose context the instrumentation injects into each task."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrumentor = CeleryInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    yield exporter
    instrumentor.uninstrument()
    provider.shutdown()


def otel_worker(
    worker_factory: Any, redis_url: str, receiver: OtlpReceiver, sandbox: ProviderSandbox, **env: str
) -> Any:
    return worker_factory(
        redis_url,
        "prefork",
        app_module="tests.apps.otel_worker",
        env={
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": receiver.endpoint,
            "OPENAI_BASE_URL": f"{sandbox.url}/v1",
            "OTEL_BSP_SCHEDULE_DELAY": "100",
            **env,
        },
    )


@pytest.fixture(params=["worker_process_init", "import"])
def worker(
    request: pytest.FixtureRequest,
    worker_factory: Any,
    redis_url: str,
    receiver: OtlpReceiver,
    provider_sandbox: ProviderSandbox,
    published: InMemorySpanExporter,
) -> Any:
    """Workers that switch on the Celery instrumentation after byok_tasks.otel (as its docs do it), or before."""
    return otel_worker(
        worker_factory, redis_url, receiver, provider_sandbox, BYOK_TEST_CELERY_INSTRUMENTOR_AT=request.param
    )


def run(worker: Any, name: str, *args: Any, uid: str | None = None, providers: tuple[str, ...] = ()) -> str:
    if uid is None:
        result = worker.app.send_task(name, args)
    else:
        with byok_context(uid, providers):
            result = worker.app.send_task(name, args)
    deadline = time.monotonic() + TIMEOUT
    while not result.ready():
        assert time.monotonic() < deadline, f"{name} did not finish"
        time.sleep(0.05)
    return str(result.id)


def task_span(receiver: OtlpReceiver, task_id: str) -> ReceivedSpan:
    [span] = receiver.wait_for(
        lambda span: span.name.startswith("run/") and span.attributes.get("messaging.message.id") == task_id
    )
    return span


def test_task_of_a_byok_user_carries_byok_source(worker: Any, receiver: OtlpReceiver) -> None:
    span = task_span(receiver, run(worker, "whoami", uid=new_uid(), providers=("openai",)))
    assert span.attributes["byok.source"] == "byok"


def test_task_without_a_context_carries_platform(worker: Any, receiver: OtlpReceiver) -> None:
    span = task_span(receiver, run(worker, "whoami"))
    assert span.attributes["byok.source"] == "platform"


def test_task_whose_context_makes_no_provider_byok_carries_platform(worker: Any, receiver: OtlpReceiver) -> None:
    span = task_span(receiver, run(worker, "whoami", uid=new_uid()))
    assert span.attributes["byok.source"] == "platform"


def test_failed_llm_task_span_carries_the_failure(worker: Any, receiver: OtlpReceiver) -> None:
    span = task_span(receiver, run(worker, "llm.summarize", "invalid", uid=new_uid(), providers=("openai",)))
    wanted = {
        "error.type": "invalid_key",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o-mini",
        "byok.source": "byok",
        "byok.reason": "invalid_key",
        "byok.retryable": False,
    }
    assert {name: span.attributes.get(name) for name in wanted} == wanted


def test_platform_failure_in_a_byok_users_task_says_platform(worker: Any, receiver: OtlpReceiver) -> None:
    # The user's context makes Anthropic theirs; the OpenAI call used the platform's key.
    span = task_span(receiver, run(worker, "llm.summarize", "nocredit", uid=new_uid(), providers=("anthropic",)))
    assert (span.attributes["byok.source"], span.attributes["error.type"]) == ("platform", "quota")
    assert span.status_code == ERROR


def test_failure_the_application_handled_is_on_the_span_of_the_task_that_succeeded(
    worker: Any, receiver: OtlpReceiver
) -> None:
    span = task_span(receiver, run(worker, "llm.handled", uid=new_uid(), providers=("openai",)))
    assert (span.attributes["byok.source"], span.attributes["error.type"]) == ("byok", "invalid_key")
    assert span.status_code != ERROR  # the user's to fix, and the task itself succeeded


def test_handled_failures_source_outlasts_the_context_of_the_task_that_succeeded(
    worker: Any, receiver: OtlpReceiver
) -> None:
    # A BYOK user of Anthropic; the OpenAI call the task handled used the platform's key.
    span = task_span(receiver, run(worker, "llm.handled", uid=new_uid(), providers=("anthropic",)))
    assert (span.attributes["byok.source"], span.attributes["error.type"]) == ("platform", "invalid_key")


def test_task_span_is_the_child_of_the_publishers_span(
    worker: Any, receiver: OtlpReceiver, published: InMemorySpanExporter
) -> None:
    task_id = run(worker, "whoami", uid=new_uid(), providers=("openai",))
    span = task_span(receiver, task_id)
    [publish] = [
        s for s in published.get_finished_spans() if (s.attributes or {}).get("messaging.message.id") == task_id
    ]
    assert publish.context is not None
    assert (span.trace_id, span.parent_span_id) == (
        f"{publish.context.trace_id:032x}",
        f"{publish.context.span_id:016x}",
    )


def test_uid_stays_off_task_spans_by_default(worker: Any, receiver: OtlpReceiver) -> None:
    uid = new_uid()
    span = task_span(receiver, run(worker, "llm.summarize", "invalid", uid=uid, providers=("openai",)))
    assert "byok.uid" not in span.attributes


def test_uid_is_on_task_spans_when_the_team_opts_in(
    worker_factory: Any, redis_url: str, receiver: OtlpReceiver, provider_sandbox: ProviderSandbox
) -> None:
    worker = otel_worker(worker_factory, redis_url, receiver, provider_sandbox, BYOK_TEST_OTEL_UID="1")
    uid = new_uid()
    span = task_span(receiver, run(worker, "whoami", uid=uid, providers=("openai",)))
    assert span.attributes["byok.uid"] == uid


@pytest.fixture(scope="module")
def beside_sentry(
    worker_factory: Any,
    redis_url: str,
    receiver: OtlpReceiver,
    provider_sandbox: ProviderSandbox,
    sentry_collector: SentryCollector,
) -> dict[str, Any]:
    """A worker and a publisher both in sentry-sdk's OTel mode, with Sentry's Celery integration on."""
    worker = otel_worker(worker_factory, redis_url, receiver, provider_sandbox, SENTRY_DSN=sentry_collector.dsn)
    uid = new_uid()
    env = environment(
        {
            "SENTRY_DSN": sentry_collector.dsn,
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": receiver.endpoint,
            "BROKER_URL": redis_url,
            "RESULT_BACKEND": redis_url,
            "BYOK_TEST_QUEUE": worker.queue,
        },
        secret=SECRET,
        require_signature=False,
    )
    done = subprocess.run(
        [sys.executable, "-m", "tests.apps.otel_publisher", uid],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return {"uid": uid, **json.loads(done.stdout.strip().splitlines()[-1])}


def test_beside_sentrys_otel_mode_the_context_still_reaches_the_task(beside_sentry: dict[str, Any]) -> None:
    assert beside_sentry["whoami"] == [beside_sentry["uid"], ["openai"]]


def test_beside_sentrys_otel_mode_the_task_span_keeps_its_parent(
    beside_sentry: dict[str, Any], receiver: OtlpReceiver
) -> None:
    task_id = beside_sentry["whoami_id"]
    span = task_span(receiver, task_id)
    [publish] = receiver.wait_for(
        lambda s: s.name.startswith("apply_async/") and s.attributes.get("messaging.message.id") == task_id
    )
    assert (span.trace_id, span.parent_span_id) == (beside_sentry["trace_id"], publish.span_id)


def test_beside_sentrys_otel_mode_the_failure_is_on_the_task_span(
    beside_sentry: dict[str, Any], receiver: OtlpReceiver
) -> None:
    span = task_span(receiver, beside_sentry["summarize_id"])
    assert (span.attributes["byok.source"], span.attributes["error.type"]) == ("byok", "invalid_key")


def test_beside_sentrys_otel_mode_the_failure_is_one_tagged_event(
    beside_sentry: dict[str, Any], sentry_collector: SentryCollector
) -> None:
    [event] = events_where(sentry_collector, uid=beside_sentry["uid"], expect=1)
    assert (tags(event)["llm.source"], tags(event)["llm.reason"]) == ("byok", "invalid_key")


def test_ignored_task_of_a_byok_user_never_claims_the_platform(worker: Any, receiver: OtlpReceiver) -> None:
    # Ignore sends no success, retry or failure signal: only task_prerun could tag the span,
    # and there byok_tasks.celery may not have restored the context yet.
    with byok_context(new_uid(), ["openai"]):
        task_id = str(worker.app.send_task("llm.ignored").id)
    span = task_span(receiver, task_id)
    assert span.attributes.get("byok.source") in (None, "byok")
