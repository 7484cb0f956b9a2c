"""The corpus harness: a case names a real client, what the loopback provider answers, and what classify must say.

Each area module holds a list of :class:`Case` records and one parametrized test that
replays them through :func:`run`. The client keeps the provider's real host on the
request (``ProviderServer.transport``) so that the classifier sees what it sees in
production; bytes go to 127.0.0.1.
"""

from __future__ import annotations

import binascii
import hashlib
import json
import os
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import anthropic
import httpx
import httpx2
import openai
import pytest
from google import genai
from google.genai import types as genai_types

from byok_tasks import LLMFailure, byok_context, classify
from byok_tasks.testing.provider_server import ProviderServer, Reply, raw_reply
from tests.support.clients import CHAT, TIMEOUT, bedrock_client, raised_by

Expected = tuple[str, str, str]  # reason, provider, source


@dataclass(frozen=True)
class Case:
    """One failure: ``client`` names a caller in :data:`CALLERS`; ``byok`` the providers the user's context names."""

    id: str
    client: str
    reply: Reply | tuple[Reply, ...]
    expect: Expected
    cite: str
    byok: tuple[str, ...] = ()
    base_url: str | None = None
    options: dict[str, Any] = field(default_factory=dict)


# --- Bodies -------------------------------------------------------------------------


def sse(*events: tuple[str | None, object]) -> bytes:
    """A text/event-stream body: ``(event name or None, data as JSON or text)`` per event."""
    out = []
    for name, data in events:
        text = data if isinstance(data, str) else json.dumps(data)
        out.append((f"event: {name}\n" if name else "") + f"data: {text}\n\n")
    return "".join(out).encode()


def stream_reply(*events: tuple[str | None, object]) -> Reply:
    return raw_reply(200, sse(*events), content_type="text/event-stream")


def _eventstream_header(name: str, value: str) -> bytes:
    encoded = value.encode()
    return bytes([len(name)]) + name.encode() + b"\x07" + struct.pack(">H", len(encoded)) + encoded


def eventstream_message(headers: dict[str, str], payload: bytes) -> bytes:
    """One binary AWS event-stream message (vnd.amazon.eventstream), as Bedrock sends it."""
    header_bytes = b"".join(_eventstream_header(name, value) for name, value in headers.items())
    total = 12 + len(header_bytes) + len(payload) + 4
    prelude = struct.pack(">II", total, len(header_bytes))
    prelude += struct.pack(">I", binascii.crc32(prelude) & 0xFFFFFFFF)
    message = prelude + header_bytes + payload
    return message + struct.pack(">I", binascii.crc32(message) & 0xFFFFFFFF)


def bedrock_stream_exception(exception_type: str, message: str, *, before: bytes = b"") -> Reply:
    """A 200 ConverseStream answer whose event stream ends in ``exception_type``."""
    body = before + eventstream_message(
        {":message-type": "exception", ":exception-type": exception_type, ":content-type": "application/json"},
        json.dumps({"message": message}).encode(),
    )
    return raw_reply(200, body, content_type="application/vnd.amazon.eventstream")


def bedrock_message_start() -> bytes:
    return eventstream_message(
        {":message-type": "event", ":event-type": "messageStart", ":content-type": "application/json"},
        b'{"role":"assistant"}',
    )


def html_reply(status: int, html: str, **headers: str) -> Reply:
    return raw_reply(status, html, content_type="text/html; charset=UTF-8", headers=headers)


# --- Clients ------------------------------------------------------------------------


class _AsyncLoopback(httpx2.AsyncHTTPTransport):
    def __init__(self, port: int) -> None:
        super().__init__()
        self._port = port

    async def handle_async_request(self, request: Any) -> Any:
        real_url = request.url
        request.url = real_url.copy_with(scheme="http", host="127.0.0.1", port=self._port)
        try:
            return await super().handle_async_request(request)
        finally:
            request.url = real_url


def _openai(server: ProviderServer, case: Case) -> openai.OpenAI:
    http_client = httpx2.Client(transport=server.transport(httpx2), timeout=TIMEOUT)
    base_url = case.base_url or "https://api.openai.com/v1"
    return openai.OpenAI(api_key="sk-test-key", base_url=base_url, max_retries=0, http_client=http_client)


def _async_openai(server: ProviderServer, case: Case) -> openai.AsyncOpenAI:
    http_client = httpx2.AsyncClient(transport=_AsyncLoopback(server.port), timeout=TIMEOUT)
    base_url = case.base_url or "https://api.openai.com/v1"
    return openai.AsyncOpenAI(api_key="sk-test-key", base_url=base_url, max_retries=0, http_client=http_client)


def openai_chat(server: ProviderServer, case: Case) -> object:
    client = _openai(server, case)
    return client.chat.completions.create(model="gpt-4o-mini", messages=CHAT)  # type: ignore[arg-type]


def openai_chat_stream(server: ProviderServer, case: Case) -> object:
    client = _openai(server, case)
    return list(client.chat.completions.create(model="gpt-4o-mini", messages=CHAT, stream=True))  # type: ignore[call-overload]


def openai_embeddings(server: ProviderServer, case: Case) -> object:
    return _openai(server, case).embeddings.create(model="text-embedding-3-small", input="hi")


def openai_images(server: ProviderServer, case: Case) -> object:
    return _openai(server, case).images.generate(model="gpt-image-1", prompt="a cat")


def openai_transcription(server: ProviderServer, case: Case) -> object:
    return _openai(server, case).audio.transcriptions.create(model="whisper-1", file=("a.mp3", b"\x00" * 64))


def openai_speech(server: ProviderServer, case: Case) -> object:
    return _openai(server, case).audio.speech.create(model="tts-1", voice="alloy", input="hi").read()


def openai_responses(server: ProviderServer, case: Case) -> object:
    return _openai(server, case).responses.create(model="gpt-4.1-mini", input="hi")


def openai_batch(server: ProviderServer, case: Case) -> object:
    return _openai(server, case).batches.create(
        input_file_id="file-abc", endpoint="/v1/chat/completions", completion_window="24h"
    )


def openai_files(server: ProviderServer, case: Case) -> object:
    return _openai(server, case).files.create(file=("batch.jsonl", b"{}\n"), purpose="batch")


def azure_chat(server: ProviderServer, case: Case) -> object:
    http_client = httpx2.Client(transport=server.transport(httpx2), timeout=TIMEOUT)
    client = openai.AzureOpenAI(
        api_key="azure-test-key",
        azure_endpoint="https://contoso.openai.azure.com",
        api_version="2024-10-21",
        max_retries=0,
        http_client=http_client,
    )
    return client.chat.completions.create(model="gpt-4o-mini", messages=CHAT)  # type: ignore[arg-type]


def _anthropic(server: ProviderServer, base_url: str | None = None) -> anthropic.Anthropic:
    http_client = httpx2.Client(transport=server.transport(httpx2), timeout=TIMEOUT)
    return anthropic.Anthropic(api_key="sk-ant-test-key", base_url=base_url, max_retries=0, http_client=http_client)


def _anthropic_call(client: Any, stream: bool) -> object:
    model = "claude-haiku-4-5"
    if stream:
        return list(client.messages.create(model=model, max_tokens=64, messages=CHAT, stream=True))
    return client.messages.create(model=model, max_tokens=64, messages=CHAT)


def anthropic_messages(server: ProviderServer, case: Case) -> object:
    return _anthropic_call(_anthropic(server, case.base_url), stream=False)


def anthropic_stream(server: ProviderServer, case: Case) -> object:
    return _anthropic_call(_anthropic(server, case.base_url), stream=True)


def _anthropic_bedrock(server: ProviderServer) -> Any:
    http_client = httpx2.Client(transport=server.transport(httpx2), timeout=TIMEOUT)
    return anthropic.AnthropicBedrock(
        aws_access_key="AKIAIOSFODNN7EXAMPLE",
        aws_secret_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        aws_region="us-east-1",
        max_retries=0,
        http_client=http_client,
    )


def anthropic_bedrock(server: ProviderServer, case: Case) -> object:
    return _anthropic_call(_anthropic_bedrock(server), stream=False)


def anthropic_bedrock_stream(server: ProviderServer, case: Case) -> object:
    return _anthropic_call(_anthropic_bedrock(server), stream=True)


def _anthropic_vertex(server: ProviderServer) -> Any:
    http_client = httpx2.Client(transport=server.transport(httpx2), timeout=TIMEOUT)
    return anthropic.AnthropicVertex(
        region="us-east5", project_id="acme-prod", access_token="ya29.test", max_retries=0, http_client=http_client
    )


def anthropic_vertex(server: ProviderServer, case: Case) -> object:
    return _anthropic_call(_anthropic_vertex(server), stream=False)


def anthropic_vertex_stream(server: ProviderServer, case: Case) -> object:
    return _anthropic_call(_anthropic_vertex(server), stream=True)


def _gemini(server: ProviderServer, *, vertex: bool) -> genai.Client:
    http_client = httpx2.Client(transport=server.transport(httpx2), timeout=TIMEOUT)
    options = genai_types.HttpOptions(timeout=int(TIMEOUT * 1000), httpx_client=http_client)
    if vertex:
        return genai.Client(vertexai=True, api_key="vertex-express-key", http_options=options)
    return genai.Client(api_key="gemini-test-key", http_options=options)


def gemini(server: ProviderServer, case: Case) -> object:
    return _gemini(server, vertex=False).models.generate_content(model="gemini-2.5-flash", contents="hi")


def gemini_stream(server: ProviderServer, case: Case) -> object:
    client = _gemini(server, vertex=False)
    return list(client.models.generate_content_stream(model="gemini-2.5-flash", contents="hi"))


def gemini_embed(server: ProviderServer, case: Case) -> object:
    return _gemini(server, vertex=False).models.embed_content(model="gemini-embedding-001", contents="hi")


def vertex_gemini(server: ProviderServer, case: Case) -> object:
    return _gemini(server, vertex=True).models.generate_content(model="gemini-2.5-flash", contents="hi")


def vertex_gemini_stream(server: ProviderServer, case: Case) -> object:
    client = _gemini(server, vertex=True)
    return list(client.models.generate_content_stream(model="gemini-2.5-flash", contents="hi"))


_BEDROCK_MESSAGES = [{"role": "user", "content": [{"text": "hi"}]}]
_BEDROCK_MODEL = "anthropic.claude-3-5-sonnet-20240620-v1:0"


def bedrock_converse(server: ProviderServer, case: Case) -> object:
    return bedrock_client(server.url).converse(modelId=_BEDROCK_MODEL, messages=_BEDROCK_MESSAGES)


def bedrock_converse_stream(server: ProviderServer, case: Case) -> object:
    answer = bedrock_client(server.url).converse_stream(modelId=_BEDROCK_MODEL, messages=_BEDROCK_MESSAGES)
    return list(answer["stream"])


def bedrock_invoke_stream(server: ProviderServer, case: Case) -> object:
    answer = bedrock_client(server.url).invoke_model_with_response_stream(modelId=_BEDROCK_MODEL, body=b"{}")
    return list(answer["body"])


def groq_chat(server: ProviderServer, case: Case, *, stream: bool = False) -> object:
    import groq

    client = groq.Groq(
        api_key="gsk_test",
        max_retries=0,
        http_client=httpx.Client(transport=server.transport(httpx), timeout=TIMEOUT),
    )
    call = client.chat.completions.create(model="llama-3.3-70b-versatile", messages=CHAT, stream=stream)  # type: ignore[call-overload]
    return list(call) if stream else call


def groq_stream(server: ProviderServer, case: Case) -> object:
    return groq_chat(server, case, stream=True)


# Wrapper libraries ------------------------------------------------------------------


def litellm_completion(server: ProviderServer, case: Case) -> object:
    import litellm

    litellm.suppress_debug_info = True
    model = str(case.options.get("model", "openai/gpt-4o-mini"))
    return litellm.completion(
        model=model,
        messages=CHAT,
        api_key="sk-test-key",
        api_base=case.base_url or server.url + "/v1",
        num_retries=0,
        max_retries=0,
        timeout=TIMEOUT,
    )


def pydantic_ai_agent(server: ProviderServer, case: Case) -> object:
    from pydantic_ai import Agent
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    model = OpenAIChatModel("gpt-4o-mini", provider=OpenAIProvider(openai_client=_async_openai(server, case)))
    return Agent(model).run_sync("hi")


def instructor_create(server: ProviderServer, case: Case) -> object:
    import instructor
    from pydantic import BaseModel

    class Answer(BaseModel):
        text: str

    client = instructor.from_openai(_openai(server, case))
    return client.chat.completions.create(
        model="gpt-4o-mini",
        messages=CHAT,  # type: ignore[arg-type]
        response_model=Answer,
        max_retries=int(case.options.get("instructor_retries", 1)),
    )


def langchain_anthropic(server: ProviderServer, case: Case) -> object:
    from langchain_anthropic import ChatAnthropic

    model = ChatAnthropic(  # type: ignore[call-arg]
        model="claude-haiku-4-5",
        api_key="sk-ant-test-key",  # type: ignore[arg-type]
        base_url="https://api.anthropic.com",
        max_retries=0,
    )
    # ChatAnthropic builds its own client: give it one whose bytes come here.
    model._client = _anthropic(server)  # type: ignore[attr-defined]
    return model.invoke("hi")


def langchain_bedrock(server: ProviderServer, case: Case) -> object:
    from langchain_aws import ChatBedrockConverse

    model = ChatBedrockConverse(model=_BEDROCK_MODEL, region_name="us-east-1", client=bedrock_client(server.url))
    if case.options.get("stream"):
        return list(model.stream("hi"))
    return model.invoke("hi")


def langchain_groq(server: ProviderServer, case: Case) -> object:
    from langchain_groq import ChatGroq

    model = ChatGroq(
        model="llama-3.3-70b-versatile",
        api_key="gsk_test",  # type: ignore[arg-type]
        max_retries=0,
        http_client=httpx.Client(transport=server.transport(httpx), timeout=TIMEOUT),
    )
    return model.invoke("hi")


def langchain_mistral(server: ProviderServer, case: Case) -> object:
    from langchain_mistralai import ChatMistralAI

    model = ChatMistralAI(model="mistral-large-latest", api_key="mistral-test-key", max_retries=0)  # type: ignore[arg-type]
    model.client = httpx.Client(  # its own httpx client, pointed here, keeping api.mistral.ai on the request
        base_url="https://api.mistral.ai/v1",
        headers={"Authorization": "Bearer mistral-test-key"},
        transport=server.transport(httpx),
        timeout=TIMEOUT,
    )
    return model.invoke("hi")


CALLERS: dict[str, Callable[[ProviderServer, Case], object]] = {
    "openai_chat": openai_chat,
    "openai_chat_stream": openai_chat_stream,
    "openai_embeddings": openai_embeddings,
    "openai_images": openai_images,
    "openai_transcription": openai_transcription,
    "openai_speech": openai_speech,
    "openai_responses": openai_responses,
    "openai_batch": openai_batch,
    "openai_files": openai_files,
    "azure_chat": azure_chat,
    "anthropic_messages": anthropic_messages,
    "anthropic_stream": anthropic_stream,
    "anthropic_bedrock": anthropic_bedrock,
    "anthropic_bedrock_stream": anthropic_bedrock_stream,
    "anthropic_vertex": anthropic_vertex,
    "anthropic_vertex_stream": anthropic_vertex_stream,
    "gemini": gemini,
    "gemini_stream": gemini_stream,
    "gemini_embed": gemini_embed,
    "vertex_gemini": vertex_gemini,
    "vertex_gemini_stream": vertex_gemini_stream,
    "bedrock_converse": bedrock_converse,
    "bedrock_converse_stream": bedrock_converse_stream,
    "bedrock_invoke_stream": bedrock_invoke_stream,
    "groq_chat": groq_chat,
    "groq_stream": groq_stream,
    "litellm_completion": litellm_completion,
    "pydantic_ai_agent": pydantic_ai_agent,
    "instructor_create": instructor_create,
    "langchain_anthropic": langchain_anthropic,
    "langchain_bedrock": langchain_bedrock,
    "langchain_groq": langchain_groq,
    "langchain_mistral": langchain_mistral,
}


# --- Running ------------------------------------------------------------------------


def run(server: ProviderServer, case: Case) -> LLMFailure | None:
    replies = case.reply if isinstance(case.reply, tuple) else (case.reply,)
    server.reply(*replies)
    exc = raised_by(lambda: CALLERS[case.client](server, case))
    with byok_context("user-1", providers=case.byok):
        return classify(exc)


def check(server: ProviderServer, case: Case) -> None:
    failure = run(server, case)
    assert failure is not None, f"{case.id}: not classified"
    got = (failure.reason, failure.provider, failure.source)
    assert got == case.expect, f"{case.id}: got {got} from {failure.error_type} {failure.status}: {failure.message!r}"
    assert "sk-test-key" not in failure.message
    assert len(failure.message) <= 501
    assert "<html" not in failure.message.lower() and "<!doctype" not in failure.message.lower()


def held_out(case_id: str) -> bool:
    """A third of the cases, fixed by their id before any classifier change, set aside for the final score."""
    return hashlib.sha256(case_id.encode()).digest()[0] % 3 == 0


def select(cases: Iterable[Case]) -> list[Any]:
    """The cases to run: ``BYOK_CORPUS=tuning`` leaves the held-out third out, ``held_out`` runs only it."""
    mode = os.environ.get("BYOK_CORPUS", "all")
    chosen = [case for case in cases if mode == "all" or (mode == "held_out") == held_out(case.id)]
    return [pytest.param(case, id=case.id) for case in chosen]


def anthropic_error(kind: str, message: str) -> dict[str, object]:
    """An error body as Anthropic's API sends it."""
    return {"type": "error", "error": {"type": kind, "message": message}}
