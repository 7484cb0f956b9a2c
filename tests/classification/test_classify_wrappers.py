"""Failures that reach the classifier wrapped, or from plain HTTP clients with no provider SDK.

LangChain, tenacity and application code put the SDK's exception in ``__cause__`` or
``__context__``; plain httpx, requests and aiohttp errors are read by duck typing.
"""

from __future__ import annotations

import asyncio

import aiohttp
import httpx
import httpx2
import pytest
import requests
from langchain_openai import ChatOpenAI, OpenAIEmbeddings
from tenacity import RetryError, retry, stop_after_attempt, wait_none

from byok_tasks import classify, llm_call
from byok_tasks.testing.provider_server import ProviderServer, closed_port_url, json_reply, stall
from tests.support.clients import STALL, STALL_TIMEOUT, TIMEOUT, chat, openai_client_for_host, raised_by
from tests.support.fixtures import loopback_only_fixture, provider_server_fixture, server_fixture  # noqa: F401

OPENAI_API = "https://api.openai.com/v1"
# Body: https://github.com/IIC2440/Syllabus-2025-1/issues/13 (shortened mask).
INVALID_KEY = {
    "error": {
        "message": "Incorrect API key provided: sk-proj-****SJh4. You can find your API key at https://platform.openai.com/account/api-keys.",
        "type": "invalid_request_error",
        "param": None,
        "code": "invalid_api_key",
    }
}
# Body: https://github.com/chatanywhere/GPT_API_free/issues/229
INSUFFICIENT_QUOTA = {
    "error": {
        "message": "You exceeded your current quota, please check your plan and billing details.",
        "type": "insufficient_quota",
        "param": None,
        "code": "insufficient_quota",
    }
}


def test_langchain_chat_openai_failure_is_classified_by_the_openai_error_it_carries(server: ProviderServer) -> None:
    server.reply(json_reply(429, INSUFFICIENT_QUOTA))
    model = ChatOpenAI(
        model="gpt-4o-mini",
        api_key="sk-test-key",  # type: ignore[arg-type]
        base_url=OPENAI_API,
        max_retries=0,
        http_client=httpx2.Client(transport=server.transport(httpx2), timeout=TIMEOUT),
    )
    failure = classify(raised_by(lambda: model.invoke("hi")))
    assert failure is not None and (failure.provider, failure.reason, failure.status) == ("openai", "quota", 429)


def test_langchain_openai_embeddings_failure_is_classified(server: ProviderServer) -> None:
    server.reply(json_reply(401, INVALID_KEY))
    embeddings = OpenAIEmbeddings(
        model="text-embedding-3-small",
        api_key="sk-test-key",  # type: ignore[arg-type]
        base_url=OPENAI_API,
        max_retries=0,
        check_embedding_ctx_length=False,  # tiktoken would download its encodings
        http_client=httpx2.Client(transport=server.transport(httpx2), timeout=TIMEOUT),
    )

    def embed() -> object:
        with llm_call(operation="embedding", feature="search-index"):
            return embeddings.embed_query("hi")

    failure = classify(raised_by(embed))
    assert failure is not None
    assert (failure.provider, failure.reason, failure.operation, failure.feature) == (
        "openai",
        "invalid_key",
        "embedding",
        "search-index",
    )


def test_tenacity_retry_error_is_classified_by_the_last_attempt(server: ProviderServer) -> None:
    server.reply(
        json_reply(503, {"error": {"message": "overloaded", "type": "server_error"}}), json_reply(401, INVALID_KEY)
    )
    client = openai_client_for_host(server, OPENAI_API)

    @retry(stop=stop_after_attempt(2), wait=wait_none())
    def call_with_retries() -> object:
        return chat(client)()

    exc = raised_by(call_with_retries)
    assert isinstance(exc, RetryError)
    failure = classify(exc)
    assert failure is not None and (failure.provider, failure.reason) == ("openai", "invalid_key")


def test_own_wrapper_raised_from_the_sdk_error_is_classified_by_the_cause(server: ProviderServer) -> None:
    server.reply(json_reply(429, INSUFFICIENT_QUOTA))
    client = openai_client_for_host(server, OPENAI_API)

    def summarise() -> object:
        try:
            return chat(client)()
        except Exception as exc:
            raise RuntimeError("could not summarise the document") from exc

    failure = classify(raised_by(summarise))
    assert failure is not None and (failure.provider, failure.reason) == ("openai", "quota")
    assert failure.error_type == "openai.RateLimitError"


def test_error_raised_while_handling_the_sdk_error_is_classified_by_the_context(server: ProviderServer) -> None:
    server.reply(json_reply(401, INVALID_KEY))
    client = openai_client_for_host(server, OPENAI_API)

    def summarise() -> object:
        try:
            return chat(client)()
        except Exception:
            raise ValueError("no summary") from None  # the context is kept, only hidden from tracebacks

    failure = classify(raised_by(summarise))
    assert failure is not None and failure.reason == "invalid_key"


def test_plain_httpx_status_error_is_read_from_its_response(server: ProviderServer) -> None:
    # No SDK: the application calls the provider's REST API with httpx and raise_for_status().
    server.reply(json_reply(401, INVALID_KEY))
    client = httpx.Client(transport=server.transport(httpx), timeout=TIMEOUT)

    def call() -> object:
        return client.post(f"{OPENAI_API}/chat/completions", json={}).raise_for_status()

    exc = raised_by(call)
    assert isinstance(exc, httpx.HTTPStatusError)
    failure = classify(exc)
    assert failure is not None
    assert (failure.provider, failure.reason, failure.code, failure.status) == (
        "openai",
        "invalid_key",
        "invalid_api_key",
        401,
    )


def test_plain_httpx_timeout_is_timeout(server: ProviderServer) -> None:
    server.reply(stall(STALL))
    client = httpx.Client(transport=server.transport(httpx), timeout=STALL_TIMEOUT)
    failure = classify(raised_by(lambda: client.post("https://api.anthropic.com/v1/messages", json={})))
    assert failure is not None and (failure.provider, failure.reason) == ("anthropic", "timeout")


def test_plain_requests_http_error_is_read_from_its_response(server: ProviderServer) -> None:
    # requests has no transport hook that keeps the URL: the caller names the provider.
    server.reply(
        json_reply(
            429,
            {"error": {"message": "Rate limit reached", "code": "rate_limit_exceeded"}},
            headers={"Retry-After": "7"},
        )
    )

    def call() -> object:
        with llm_call("groq", model="llama-3.3-70b-versatile"):
            return requests.post(
                f"{server.url}/openai/v1/chat/completions", json={}, timeout=TIMEOUT
            ).raise_for_status()

    failure = classify(raised_by(call))
    assert failure is not None
    assert (failure.provider, failure.reason, failure.retry_after, failure.model) == (
        "groq",
        "rate_limit",
        7.0,
        "llama-3.3-70b-versatile",
    )


def test_plain_requests_refused_connection_is_connection() -> None:
    failure = classify(raised_by(lambda: requests.get(closed_port_url(), timeout=TIMEOUT)))
    assert failure is not None and (failure.provider, failure.reason) == ("unknown", "connection")


def test_plain_requests_read_timeout_is_timeout(server: ProviderServer) -> None:
    server.reply(stall(STALL))
    failure = classify(raised_by(lambda: requests.get(server.url, timeout=STALL_TIMEOUT)))
    assert failure is not None and failure.reason == "timeout"


def test_aiohttp_response_error_is_read_by_duck_typing(server: ProviderServer) -> None:
    server.reply(json_reply(503, {"error": {"message": "overloaded"}}, headers={"Retry-After": "2"}))

    async def call() -> None:
        async with aiohttp.ClientSession() as session, session.post(server.url + "/v1/chat", raise_for_status=True):
            pass

    exc = raised_by(lambda: asyncio.run(call()))
    assert isinstance(exc, aiohttp.ClientResponseError)
    failure = classify(exc)
    assert failure is not None and (failure.reason, failure.status, failure.retry_after) == ("overloaded", 503, 2.0)


def test_aiohttp_refused_connection_is_connection() -> None:
    async def call() -> None:
        async with aiohttp.ClientSession() as session, session.get(closed_port_url()):
            pass

    failure = classify(raised_by(lambda: asyncio.run(call())))
    assert failure is not None and failure.reason == "connection"


@pytest.mark.parametrize(
    ("exc", "reason"),
    [(TimeoutError("timed out"), "timeout"), (ConnectionRefusedError(111, "Connection refused"), "connection")],
)
def test_builtin_timeout_and_connection_errors_are_transport_failures(exc: BaseException, reason: str) -> None:
    failure = classify(exc)
    assert failure is not None and (failure.provider, failure.reason, failure.retryable) == ("unknown", reason, True)
