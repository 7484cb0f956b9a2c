"""The real SDK clients, pointed at the loopback provider, retries off.

Clients of the providers that the *host* identifies (OpenRouter, xAI, Azure, Groq's
OpenAI-compatible endpoint) — and of those whose SDKs let httpx's own timeout and
connection errors through (google-genai, mistralai, cohere) — keep the provider's real
URL: the SDK's own HTTP-client hook (``http_client=httpx2.Client(transport=...)``) sends
the bytes to loopback while the request object, and so the exception, still names the
real host. Bedrock's botocore client does the same through its proxy setting.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anthropic
import botocore.session
import cohere
import groq
import httpx
import httpx2
import openai
import pytest
from botocore.config import Config
from google import genai
from google.genai import types as genai_types
from mistralai.client import Mistral

from byok_tasks.testing.provider_server import ProviderServer

# A reply that comes must never be timed out, however loaded the machine: a full suite on
# two cores has kept loopback replies waiting over half a second. Only the timeout tests
# time out, against a server that stalls: STALL outlasts STALL_TIMEOUT whatever the load.
TIMEOUT = 30.0
STALL_TIMEOUT = 0.5
STALL = 3.0
CHAT = [{"role": "user", "content": "hi"}]


def raised_by(call: Callable[[], object]) -> BaseException:
    """The exception ``call`` raises, as the SDK raised it."""
    with pytest.raises(Exception) as info:
        call()
    return info.value


def openai_client(base_url: str, *, timeout: float = TIMEOUT) -> openai.OpenAI:
    return openai.OpenAI(api_key="sk-test-key", base_url=base_url, max_retries=0, timeout=timeout)


def openai_client_for_host(
    server: ProviderServer, base_url: str, *, timeout: float = TIMEOUT, **kwargs: Any
) -> openai.OpenAI:
    """An OpenAI SDK client for ``base_url`` (a real provider URL) whose bytes go to ``server``."""
    http_client = httpx2.Client(transport=server.transport(httpx2), timeout=timeout)
    return openai.OpenAI(api_key="sk-test-key", base_url=base_url, max_retries=0, http_client=http_client, **kwargs)


def azure_client(server: ProviderServer, *, timeout: float = TIMEOUT) -> openai.AzureOpenAI:
    http_client = httpx2.Client(transport=server.transport(httpx2), timeout=timeout)
    return openai.AzureOpenAI(
        api_key="azure-test-key",
        azure_endpoint="https://contoso.openai.azure.com",
        api_version="2024-10-21",
        max_retries=0,
        http_client=http_client,
    )


def chat(client: openai.OpenAI, model: str = "gpt-4o-mini") -> Callable[[], object]:
    return lambda: client.chat.completions.create(model=model, messages=CHAT)  # type: ignore[arg-type]


def anthropic_client(base_url: str, *, timeout: float = TIMEOUT) -> anthropic.Anthropic:
    return anthropic.Anthropic(api_key="sk-ant-test-key", base_url=base_url, max_retries=0, timeout=timeout)


def anthropic_message(client: anthropic.Anthropic) -> Callable[[], object]:
    return lambda: client.messages.create(model="claude-haiku-4-5", max_tokens=64, messages=CHAT)  # type: ignore[arg-type]


def gemini_client(server: ProviderServer, *, timeout: float = TIMEOUT) -> genai.Client:
    """A Gemini API client for generativelanguage.googleapis.com whose bytes go to ``server``."""
    http_client = httpx2.Client(transport=server.transport(httpx2), timeout=timeout)
    options = genai_types.HttpOptions(timeout=int(timeout * 1000), httpx_client=http_client)
    return genai.Client(api_key="gemini-test-key", http_options=options)


def gemini_generate(client: genai.Client) -> Callable[[], object]:
    return lambda: client.models.generate_content(model="gemini-2.5-flash", contents="hi")


def groq_client(base_url: str, *, timeout: float = TIMEOUT) -> groq.Groq:
    return groq.Groq(api_key="gsk_test", base_url=base_url, max_retries=0, timeout=timeout)


def groq_chat(client: groq.Groq) -> Callable[[], object]:
    return lambda: client.chat.completions.create(model="llama-3.3-70b-versatile", messages=CHAT)  # type: ignore[arg-type]


def mistral_client(server: ProviderServer, *, timeout: float = TIMEOUT) -> Mistral:
    """A client for api.mistral.ai whose bytes go to ``server``.

    Its transport errors are httpx2's own: only the host says they are Mistral's.
    """
    http_client = httpx2.Client(transport=server.transport(httpx2), timeout=timeout)
    return Mistral(api_key="mistral-test-key", client=http_client, timeout_ms=int(timeout * 1000))


def mistral_chat(client: Mistral) -> Callable[[], object]:
    return lambda: client.chat.complete(model="mistral-large-latest", messages=CHAT)  # type: ignore[arg-type]


def cohere_client(server: ProviderServer, *, timeout: float = TIMEOUT) -> cohere.ClientV2:
    """A client for api.cohere.com whose bytes go to ``server``.

    Its transport errors are httpx's own: only the host says they are Cohere's.
    """
    http_client = httpx.Client(transport=server.transport(httpx), timeout=timeout)
    return cohere.ClientV2(api_key="cohere-test-key", max_retries=0, httpx_client=http_client)


def cohere_chat(client: cohere.ClientV2) -> Callable[[], object]:
    return lambda: client.chat(model="command-a-03-2025", messages=CHAT)  # type: ignore[arg-type]


BEDROCK_ENDPOINT = "http://bedrock-runtime.us-east-1.amazonaws.com"


def bedrock_client(proxy_url: str, *, endpoint_url: str = BEDROCK_ENDPOINT, timeout: float = TIMEOUT) -> Any:
    """A bedrock-runtime client for the real regional endpoint, spoken through ``proxy_url``."""
    config = Config(
        proxies={"http": proxy_url} if proxy_url else None,
        retries={"total_max_attempts": 1, "mode": "standard"},
        connect_timeout=timeout,
        read_timeout=timeout,
    )
    return botocore.session.get_session().create_client(
        "bedrock-runtime",
        region_name="us-east-1",
        endpoint_url=endpoint_url,
        aws_access_key_id="AKIAIOSFODNN7EXAMPLE",
        aws_secret_access_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        config=config,
    )


def bedrock_converse(client: Any) -> Callable[[], object]:
    messages = [{"role": "user", "content": [{"text": "hi"}]}]
    return lambda: client.converse(modelId="anthropic.claude-3-5-sonnet-20240620-v1:0", messages=messages)
