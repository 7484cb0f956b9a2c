"""What classify counts as an LLM failure, how it picks the provider, and what it reads from headers."""

from __future__ import annotations

from email.utils import formatdate
from time import time

import httpx
import pytest

from byok_tasks import byok_context, classification, classify, llm_call
from byok_tasks.testing.provider_server import ProviderServer, json_reply
from tests.support.clients import chat, gemini_generate, openai_client, openai_client_for_host, raised_by
from tests.support.fixtures import loopback_only_fixture, provider_server_fixture, server_fixture  # noqa: F401

# Body: https://github.com/semanser/codel/issues/72
RATE_LIMITED = {
    "error": {
        "message": "Rate limit reached for gpt-4o in organization org-XXXX on tokens per min (TPM): Limit 30000.",
        "type": "tokens",
        "param": None,
        "code": "rate_limit_exceeded",
    }
}


@pytest.mark.parametrize(
    "exc", [KeyError("choices"), ValueError("bad json"), RuntimeError("boom"), ZeroDivisionError()]
)
def test_ordinary_exceptions_are_not_llm_failures(exc: BaseException) -> None:
    assert classify(exc) is None


def test_key_error_is_none() -> None:
    assert classify(KeyError()) is None


def test_a_web_frameworks_own_http_exception_is_not_an_llm_failure() -> None:
    class HTTPException(Exception):  # what FastAPI and Starlette raise to answer a request
        def __init__(self, status_code: int, detail: str) -> None:
            super().__init__(detail)
            self.status_code = status_code
            self.detail = detail

    assert classify(HTTPException(404, "Not Found")) is None


def test_llm_call_provider_wins_over_the_request_host(server: ProviderServer) -> None:
    server.reply(json_reply(429, RATE_LIMITED))

    def call() -> object:
        with llm_call("azure_openai"):  # say, a gateway in front of Azure that answers at api.openai.com
            return chat(openai_client_for_host(server, "https://api.openai.com/v1"))()

    failure = classify(raised_by(call))
    assert failure is not None and failure.provider == "azure_openai"


def test_provider_argument_names_the_provider_when_nothing_else_does(server: ProviderServer) -> None:
    server.reply(json_reply(429, RATE_LIMITED))
    exc = raised_by(chat(openai_client(server.url + "/v1")))
    failure = classify(exc, provider="groq")
    assert failure is not None and (failure.provider, failure.reason) == ("groq", "rate_limit")


def test_llm_call_provider_wins_over_the_provider_argument(server: ProviderServer) -> None:
    server.reply(json_reply(429, RATE_LIMITED))

    def call() -> object:
        with llm_call("openrouter"):
            return chat(openai_client(server.url + "/v1"))()

    failure = classify(raised_by(call), provider="openai")
    assert failure is not None and failure.provider == "openrouter"


def test_sdk_module_names_the_provider_when_the_host_is_not_a_providers(server: ProviderServer) -> None:
    # A Gemini client pointed at a proxy: no known host, but google-genai raised it.
    from google import genai
    from google.genai import types

    # Body: https://github.com/google-gemini/cookbook/issues/425
    server.reply(
        json_reply(503, {"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}})
    )
    client = genai.Client(api_key="gemini-test-key", http_options=types.HttpOptions(base_url=server.url, timeout=2000))
    failure = classify(raised_by(gemini_generate(client)))
    assert failure is not None and (failure.provider, failure.reason) == ("google", "overloaded")


def test_unknown_provider_is_read_like_any_llm_api(server: ProviderServer) -> None:
    # Plain httpx to an in-house gateway: neither the host nor an SDK names a provider.
    server.reply(json_reply(429, RATE_LIMITED))
    client = httpx.Client(transport=server.transport(httpx))
    failure = classify(
        raised_by(lambda: client.post("https://llm-gateway.internal.example/v1/chat").raise_for_status())
    )
    assert failure is not None and (failure.provider, failure.reason, failure.code) == (
        "unknown",
        "rate_limit",
        "rate_limit_exceeded",
    )


def test_retry_after_as_an_http_date_is_seconds_from_now(server: ProviderServer) -> None:
    server.reply(json_reply(429, RATE_LIMITED, headers={"Retry-After": formatdate(time() + 120, usegmt=True)}))
    failure = classify(raised_by(chat(openai_client_for_host(server, "https://api.openai.com/v1"))))
    assert failure is not None and failure.retry_after is not None and 100 < failure.retry_after <= 120


def test_retry_after_ms_is_preferred_to_retry_after(server: ProviderServer) -> None:
    server.reply(json_reply(429, RATE_LIMITED, headers={"retry-after": "2", "retry-after-ms": "1500"}))
    failure = classify(raised_by(chat(openai_client_for_host(server, "https://api.openai.com/v1"))))
    assert failure is not None and failure.retry_after == 1.5


def test_failure_as_dict_holds_every_field(server: ProviderServer) -> None:
    server.reply(json_reply(429, RATE_LIMITED))
    failure = classify(raised_by(chat(openai_client_for_host(server, "https://api.openai.com/v1"))))
    assert failure is not None
    record = failure.as_dict()
    assert record["provider"] == "openai" and record["reason"] == "rate_limit" and record["source"] == "platform"
    assert set(record) >= {
        "source",
        "provider",
        "reason",
        "status",
        "code",
        "retry_after",
        "retryable",
        "model",
        "feature",
        "operation",
        "uid",
        "error_type",
        "message",
    }


def test_message_is_bounded() -> None:
    class GatewayError(Exception):
        status_code = 500

        def __init__(self) -> None:
            super().__init__("gateway error")
            self.body = {"error": {"message": "x " * 5000}}

    def call() -> None:
        with llm_call("openai"):
            raise GatewayError()

    failure = classify(raised_by(call))
    assert failure is not None and len(failure.message) <= 501


def test_a_classifier_bug_still_says_whose_key_failed(monkeypatch: pytest.MonkeyPatch) -> None:
    # Fault injection: no real input is known to break the classifier, so a bug is simulated.
    def broken(*args: object) -> None:
        raise RuntimeError("a bug in the classifier")

    monkeypatch.setattr(classification, "_read_safely", broken)
    with (
        byok_context("user-1", ["openai"]),
        pytest.raises(httpx.ConnectError) as raised,
        llm_call("openai", model="gpt-4o-mini"),
    ):
        raise httpx.ConnectError("refused")
    failure = classify(raised.value)
    assert failure is not None
    assert (failure.source, failure.provider, failure.reason, failure.uid) == ("byok", "openai", "unknown", "user-1")
