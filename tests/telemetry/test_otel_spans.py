"""byok_tasks.otel in one process: the real OpenTelemetry SDK, spans read from its in-memory exporter.

Failures come from real SDK calls (OpenAI, google-genai, LangChain's ChatOpenAI) against the loopback provider.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
from google import genai
from google.genai import types as genai_types
from langchain_openai import ChatOpenAI
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

import byok_tasks.otel
from byok_tasks import byok_context, report_llm_error
from byok_tasks.failure import LLMFailure
from byok_tasks.langchain import ByokCallbackHandler
from byok_tasks.testing.provider_server import ProviderServer, json_reply
from byok_tasks.testing.sandbox import ProviderSandbox, sandbox_key
from tests.support.ids import new_uid
from tests.telemetry.support import openai_failure


@pytest.fixture
def spans() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    byok_tasks.otel.uninstrument()
    provider.shutdown()


def report_in_span(spans: Any, exc: BaseException, **annotations: Any) -> ReadableSpan:
    provider, exporter = spans
    with provider.get_tracer("test").start_as_current_span("summarize"):
        report_llm_error(exc, **annotations)
    [span] = exporter.get_finished_spans()
    return span


def test_failure_reported_in_a_span_puts_its_classification_on_that_span(
    spans: Any, provider_sandbox: ProviderSandbox
) -> None:
    byok_tasks.otel.instrument()
    with byok_context(new_uid(), ["openai"]):
        span = report_in_span(spans, openai_failure(provider_sandbox.url, "nocredit"), model="gpt-4o-mini")
    assert dict(span.attributes or {}) == {
        "error.type": "quota",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o-mini",
        "byok.source": "byok",
        "byok.reason": "quota",
        "byok.retryable": False,
    }


def test_platform_failure_makes_the_span_an_error(spans: Any, provider_sandbox: ProviderSandbox) -> None:
    byok_tasks.otel.instrument()
    span = report_in_span(spans, openai_failure(provider_sandbox.url, "nocredit"))
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes is not None and span.attributes["byok.source"] == "platform"


def test_failure_the_user_must_fix_on_their_key_leaves_the_status_unset(
    spans: Any, provider_sandbox: ProviderSandbox
) -> None:
    byok_tasks.otel.instrument()
    with byok_context(new_uid(), ["openai"]):
        span = report_in_span(spans, openai_failure(provider_sandbox.url, "invalid"))
    assert span.status.status_code is StatusCode.UNSET


def test_users_rate_limit_is_still_an_error(spans: Any, provider_sandbox: ProviderSandbox) -> None:
    byok_tasks.otel.instrument()
    with byok_context(new_uid(), ["openai"]):
        span = report_in_span(spans, openai_failure(provider_sandbox.url, "ratelimited"))
    assert span.status.status_code is StatusCode.ERROR


def test_uid_stays_off_the_span_by_default(spans: Any, provider_sandbox: ProviderSandbox) -> None:
    byok_tasks.otel.instrument()
    with byok_context(new_uid(), ["openai"]):
        span = report_in_span(spans, openai_failure(provider_sandbox.url))
    assert "byok.uid" not in (span.attributes or {})


def test_uid_is_on_the_span_when_the_team_opts_in(spans: Any, provider_sandbox: ProviderSandbox) -> None:
    byok_tasks.otel.instrument(uid=True)
    uid = new_uid()
    with byok_context(uid, ["openai"]):
        span = report_in_span(spans, openai_failure(provider_sandbox.url))
    assert (span.attributes or {})["byok.uid"] == uid


def test_failure_without_a_span_is_reported_as_ever(provider_sandbox: ProviderSandbox) -> None:
    byok_tasks.otel.instrument()
    try:
        assert report_llm_error(openai_failure(provider_sandbox.url)) is not None
    finally:
        byok_tasks.otel.uninstrument()


def test_failure_after_uninstrument_leaves_the_span_alone(spans: Any, provider_sandbox: ProviderSandbox) -> None:
    byok_tasks.otel.instrument()
    byok_tasks.otel.uninstrument()
    span = report_in_span(spans, openai_failure(provider_sandbox.url))
    assert dict(span.attributes or {}) == {}


def test_instrument_again_with_other_settings_is_an_error(spans: Any) -> None:
    byok_tasks.otel.instrument()
    byok_tasks.otel.instrument()
    with pytest.raises(ValueError, match="other settings"):
        byok_tasks.otel.instrument(uid=True)


def failure_of(provider: str) -> LLMFailure:
    return LLMFailure(
        source="platform",
        provider=provider,
        reason="server_error",
        status=500,
        code=None,
        retry_after=None,
        retryable=True,
        model=None,
        feature=None,
        operation="chat",
        uid=None,
        error_type="Exception",
        message="",
    )


@pytest.mark.parametrize(
    ("ours", "conventions"),
    [
        ("openai", "openai"),
        ("anthropic", "anthropic"),
        ("azure_openai", "azure.ai.openai"),
        ("bedrock", "aws.bedrock"),
        ("google", "gcp.gemini"),
        ("mistral", "mistral_ai"),
        ("xai", "x_ai"),
        ("groq", "groq"),
        ("cohere", "cohere"),
        ("deepseek", "deepseek"),
        ("openrouter", "openrouter"),
    ],
)
def test_provider_names_follow_the_genai_conventions(ours: str, conventions: str) -> None:
    assert byok_tasks.otel.provider_name(failure_of(ours)) == conventions


def gemini_failure(server: ProviderServer, *, vertex: bool) -> BaseException:
    server.reply(json_reply(500, {"error": {"code": 500, "status": "INTERNAL", "message": "Internal error"}}))
    http_client = httpx2.Client(transport=server.transport(httpx2), timeout=10)
    options = genai_types.HttpOptions(timeout=10_000, httpx_client=http_client)
    client = genai.Client(vertexai=vertex, api_key="gemini-test-key", http_options=options)
    try:
        client.models.generate_content(model="gemini-2.5-flash", contents="hi")
    except Exception as exc:
        return exc
    raise AssertionError("the provider server answered a scripted failure with success")


@pytest.fixture(scope="module")
def google_server() -> Iterator[ProviderServer]:
    with ProviderServer() as server:
        yield server


def test_gemini_api_failure_is_gcp_gemini(spans: Any, google_server: ProviderServer) -> None:
    byok_tasks.otel.instrument()
    span = report_in_span(spans, gemini_failure(google_server, vertex=False))
    assert (span.attributes or {})["gen_ai.provider.name"] == "gcp.gemini"


def test_vertex_ai_failure_is_gcp_vertex_ai(spans: Any, google_server: ProviderServer) -> None:
    byok_tasks.otel.instrument()
    span = report_in_span(spans, gemini_failure(google_server, vertex=True))
    assert (span.attributes or {})["gen_ai.provider.name"] == "gcp.vertex_ai"


def test_failure_of_an_inner_span_is_put_on_the_inner_span(spans: Any, provider_sandbox: ProviderSandbox) -> None:
    provider, exporter = spans
    byok_tasks.otel.instrument()
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("task"), tracer.start_as_current_span("llm call"):
        report_llm_error(openai_failure(provider_sandbox.url, "nocredit"))
    inner, outer = exporter.get_finished_spans()
    assert (inner.name, (inner.attributes or {}).get("error.type")) == ("llm call", "quota")
    assert dict(outer.attributes or {}) == {}


def test_failure_langchain_reports_is_put_on_the_span_around_the_chain(
    spans: Any, provider_sandbox: ProviderSandbox
) -> None:
    provider, exporter = spans
    byok_tasks.otel.instrument()
    llm = ChatOpenAI(
        model="gpt-4o-mini",
        base_url=f"{provider_sandbox.url}/v1",
        api_key=sandbox_key("openai", "nocredit"),  # type: ignore[arg-type]
        max_retries=0,
        callbacks=[ByokCallbackHandler(report=True)],
    )
    with provider.get_tracer("test").start_as_current_span("chain"), pytest.raises(Exception, match="quota"):
        llm.invoke("Summarise: we met and agreed.")
    [span] = exporter.get_finished_spans()
    attributes = dict(span.attributes or {})
    assert (attributes["error.type"], attributes["gen_ai.request.model"]) == ("quota", "gpt-4o-mini")
