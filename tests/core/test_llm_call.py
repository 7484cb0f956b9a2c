"""llm_call: annotate a call so that its failure, classified later and elsewhere, says what the caller knew."""

from __future__ import annotations

import asyncio

import pytest

from byok_tasks import byok_context, classify, current_context, llm_call
from byok_tasks.failure import annotations_of
from byok_tasks.testing.provider_server import ProviderServer, json_reply
from tests.support.clients import chat, openai_client_for_host, raised_by
from tests.support.fixtures import loopback_only_fixture, provider_server_fixture, server_fixture  # noqa: F401

# Body: https://github.com/chatanywhere/GPT_API_free/issues/229
INSUFFICIENT_QUOTA = {
    "error": {
        "message": "You exceeded your current quota, please check your plan and billing details.",
        "type": "insufficient_quota",
        "param": None,
        "code": "insufficient_quota",
    }
}


def openai_quota_error(server: ProviderServer) -> BaseException:
    server.reply(json_reply(429, INSUFFICIENT_QUOTA))
    return raised_by(chat(openai_client_for_host(server, "https://api.openai.com/v1")))


class ProviderDown(Exception):
    """Stands for a provider's failure in the tests that are only about annotations.

    It carries a status and nothing else, like an in-house client's error: inside an
    llm_call that is enough to be an LLM failure.
    """

    status_code = 503


def test_failure_carries_model_feature_and_operation_from_the_with_block(server: ProviderServer) -> None:
    def summarise() -> None:
        with llm_call("openai", model="gpt-4o-mini", feature="summaries", operation="chat"):
            raise openai_quota_error(server)

    failure = classify(raised_by(summarise))
    assert failure is not None
    assert (failure.model, failure.feature, failure.operation, failure.reason) == (
        "gpt-4o-mini",
        "summaries",
        "chat",
        "quota",
    )


def test_model_and_feature_are_none_when_nobody_said(server: ProviderServer) -> None:
    failure = classify(openai_quota_error(server))
    assert failure is not None and (failure.model, failure.feature, failure.operation) == (None, None, "chat")


def test_failure_after_the_context_was_reset_is_still_the_users_key(server: ProviderServer) -> None:
    exc = None
    with byok_context("user-42", providers=["openai"]):
        try:
            with llm_call("openai"):
                raise openai_quota_error(server)
        except Exception as caught:
            exc = caught
    assert current_context() is None  # the task is over; the failure is classified now
    failure = classify(exc)
    assert failure is not None and (failure.source, failure.uid, failure.reason) == ("byok", "user-42", "quota")


def test_provider_not_in_the_users_providers_is_the_platform_key() -> None:
    with byok_context("user-42", providers=["anthropic"]):
        failure = classify(raised_by(llm_call("openai")(_raise_provider_down)))
    assert failure is not None and (failure.source, failure.uid) == ("platform", "user-42")


def test_provider_found_by_host_decides_whose_key_after_the_context_is_gone(server: ProviderServer) -> None:
    with byok_context("user-7", providers=["openai"]):
        exc = raised_by(llm_call(feature="digest")(lambda: _raise(openai_quota_error(server))))
    failure = classify(exc)
    assert failure is not None and (failure.provider, failure.source, failure.uid) == ("openai", "byok", "user-7")


def test_source_given_to_llm_call_wins_over_the_context() -> None:
    with byok_context("user-42", providers=["openai"]):
        failure = classify(raised_by(llm_call("openai", source="platform")(_raise_provider_down)))
    assert failure is not None and failure.source == "platform"


def test_innermost_llm_call_wins_and_outer_fills_the_rest() -> None:
    @llm_call(model="inner-model")
    def complete() -> None:
        _raise_provider_down()

    def nested() -> None:
        with llm_call("openai", model="outer-model", feature="reports", operation="embedding"):
            complete()

    failure = classify(raised_by(nested))
    assert failure is not None
    assert (failure.provider, failure.model, failure.feature, failure.operation) == (
        "openai",
        "inner-model",
        "reports",
        "embedding",
    )


def test_llm_call_on_an_inner_exception_wins_over_one_on_its_wrapper() -> None:
    def wrapped() -> None:
        with llm_call(feature="outer-feature", model="outer-model"):
            try:
                with llm_call("anthropic", model="claude-haiku-4-5"):
                    _raise_provider_down()
            except ProviderDown as exc:
                raise RuntimeError("summary failed") from exc

    failure = classify(raised_by(wrapped))
    assert failure is not None
    assert (failure.provider, failure.model, failure.feature) == ("anthropic", "claude-haiku-4-5", "outer-feature")


def test_llm_call_lets_the_same_exception_through_unchanged() -> None:
    original = ProviderDown("provider down")

    def call() -> None:
        with llm_call("openai"):
            raise original

    with pytest.raises(ProviderDown) as info:
        call()
    assert info.value is original and info.value.args == ("provider down",)
    assert info.value.__traceback__ is not None and info.value.__cause__ is None


def test_decorated_sync_function_returns_its_value_and_keeps_its_name() -> None:
    @llm_call("openai", model="gpt-4o-mini")
    def summarise(text: str) -> str:
        """Summarise ``text``."""
        return text.upper()

    assert summarise("ok") == "OK"
    assert (summarise.__name__, summarise.__doc__) == ("summarise", "Summarise ``text``.")


def test_decorated_sync_function_annotates_its_failure() -> None:
    @llm_call("cohere", model="command-a-03-2025", feature="rerank")
    def rerank() -> None:
        _raise_provider_down()

    failure = classify(raised_by(rerank))
    assert failure is not None and (failure.provider, failure.model, failure.feature) == (
        "cohere",
        "command-a-03-2025",
        "rerank",
    )


def test_decorated_async_function_annotates_its_failure() -> None:
    @llm_call("mistral", model="mistral-large-latest")
    async def complete() -> None:
        await asyncio.sleep(0)
        _raise_provider_down()

    assert asyncio.iscoroutinefunction(complete)
    failure = classify(raised_by(lambda: asyncio.run(complete())))
    assert failure is not None and (failure.provider, failure.model) == ("mistral", "mistral-large-latest")


def test_async_with_annotates_and_keeps_the_context_of_its_task() -> None:
    async def task(uid: str) -> BaseException:
        with byok_context(uid, providers=["groq"]):
            try:
                async with llm_call("groq", model="llama-3.3-70b-versatile"):
                    await asyncio.sleep(0)
                    _raise_provider_down()
            except ProviderDown as exc:
                return exc
        raise AssertionError("unreachable")

    async def both() -> list[BaseException]:
        return list(await asyncio.gather(task("alice"), task("bob")))

    failures = [classify(exc) for exc in asyncio.run(both())]
    assert [(f.uid, f.source) for f in failures if f is not None] == [("alice", "byok"), ("bob", "byok")]


def test_one_decorator_instance_serves_concurrent_calls() -> None:
    annotate = llm_call("openai", feature="shared")

    @annotate
    async def call() -> None:
        await asyncio.sleep(0)
        _raise_provider_down()

    async def run(uid: str) -> BaseException:
        with byok_context(uid, providers=["openai"]):
            try:
                await call()
            except ProviderDown as exc:
                return exc
        raise AssertionError("unreachable")

    async def both() -> list[BaseException]:
        return list(await asyncio.gather(run("u1"), run("u2")))

    uids = [failure.uid for exc in asyncio.run(both()) if (failure := classify(exc)) is not None]
    assert uids == ["u1", "u2"]


@pytest.mark.parametrize("exc", [KeyboardInterrupt(), asyncio.CancelledError()])
def test_cancellation_and_interrupts_are_not_annotated(exc: BaseException) -> None:
    with pytest.raises(type(exc)), llm_call("openai"):
        raise exc
    assert annotations_of(exc) is None


def test_unknown_source_is_refused() -> None:
    with pytest.raises(ValueError, match="source"):
        llm_call("openai", source="mine")  # type: ignore[arg-type]


def test_key_error_inside_llm_call_is_not_an_llm_failure() -> None:
    def lookup() -> None:
        with llm_call("openai"):
            raise KeyError("choices")

    assert classify(raised_by(lookup)) is None


def _raise_provider_down() -> None:
    raise ProviderDown("provider down")


def _raise(exc: BaseException) -> None:
    raise exc
