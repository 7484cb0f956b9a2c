"""LangChain's real ChatOpenAI and OpenAIEmbeddings fail against the loopback sandbox, annotated by our handler."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Callable
from typing import Any

import httpx2
import pytest
from celery import Celery
from langchain_core.language_models import BaseChatModel
from langchain_openai import ChatOpenAI, OpenAIEmbeddings

import byok_tasks.celery
from byok_tasks import LLMFailure, byok_context, classify, current_key
from byok_tasks.failure import annotations_of
from byok_tasks.langchain import ByokCallbackHandler, ByokEmbeddings
from byok_tasks.testing.pytest_plugin import FailureRecords
from byok_tasks.testing.sandbox import ProviderSandbox, sandbox_key
from tests.support.celery_worker import SECRET
from tests.support.clients import raised_by
from tests.support.fixtures import loopback_only_fixture  # noqa: F401

pytest_plugins = ["pytester"]

PROMPT = "Summarise: the quarterly numbers are in."


def chat(sandbox: ProviderSandbox, key: str | None, handler: ByokCallbackHandler, model: str = "gpt-4o-mini") -> Any:
    return ChatOpenAI(
        model=model,
        base_url=f"{sandbox.url}/v1",
        api_key=key,
        max_retries=0,
        timeout=10,
        callbacks=[handler],
        # langchain-openai shares one async HTTP client per base URL, bound to the first event
        # loop that used it: each asyncio.run of these tests needs its own.
        http_async_client=httpx2.AsyncClient(timeout=10),
    )


def embeddings(sandbox: ProviderSandbox, key: str | None) -> OpenAIEmbeddings:
    # check_embedding_ctx_length=False: tiktoken would download its tables from the internet.
    return OpenAIEmbeddings(
        model="text-embedding-3-small",
        base_url=f"{sandbox.url}/v1",
        api_key=key,  # type: ignore[arg-type]
        max_retries=0,
        timeout=10,
        check_embedding_ctx_length=False,
        http_async_client=httpx2.AsyncClient(timeout=10),
    )


def classified(exc: BaseException) -> LLMFailure:
    failure = classify(exc)
    assert failure is not None
    return failure


def test_users_revoked_key_fails_a_chat_model_as_their_failure(provider_sandbox: ProviderSandbox) -> None:
    with byok_context("alice", keys={"openai": sandbox_key("openai", "invalid")}):
        llm = chat(provider_sandbox, current_key("openai"), ByokCallbackHandler(feature="summaries"))
        failure = classified(raised_by(lambda: llm.invoke(PROMPT)))
    assert (failure.source, failure.uid, failure.provider, failure.reason) == ("byok", "alice", "openai", "invalid_key")
    assert (failure.model, failure.feature, failure.operation) == ("gpt-4o-mini", "summaries", "chat")


def test_platform_key_out_of_credit_is_the_platforms_failure(provider_sandbox: ProviderSandbox) -> None:
    llm = chat(provider_sandbox, sandbox_key("openai", "nocredit"), ByokCallbackHandler(feature="summaries"))
    failure = classified(raised_by(lambda: llm.invoke(PROMPT)))
    assert (failure.source, failure.reason, failure.model, failure.feature) == (
        "platform",
        "quota",
        "gpt-4o-mini",
        "summaries",
    )


def test_async_chat_failure_is_annotated_before_it_reaches_the_caller(provider_sandbox: ProviderSandbox) -> None:
    async def summarise() -> None:
        with byok_context("alice", keys={"openai": sandbox_key("openai", "invalid")}):
            llm = chat(provider_sandbox, current_key("openai"), ByokCallbackHandler(feature="summaries"))
            await llm.ainvoke(PROMPT)

    failure = classified(raised_by(lambda: asyncio.run(summarise())))
    assert (failure.source, failure.uid, failure.model) == ("byok", "alice", "gpt-4o-mini")


def test_one_handler_names_the_model_of_each_concurrent_run(provider_sandbox: ProviderSandbox) -> None:
    handler = ByokCallbackHandler()
    models = ["gpt-4o-mini", "gpt-4.1", "o3-mini"] * 4
    errors: list[BaseException | None] = [None] * len(models)

    def call(index: int) -> None:
        errors[index] = raised_by(
            lambda: chat(provider_sandbox, sandbox_key("openai", "invalid"), handler, models[index]).invoke(PROMPT)
        )

    threads = [threading.Thread(target=call, args=(index,)) for index in range(len(models))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert [classified(exc).model if exc else None for exc in errors] == models


def test_a_handler_forgets_the_oldest_of_too_many_unfinished_runs() -> None:
    handler = ByokCallbackHandler()
    runs = [uuid.uuid4() for _ in range(ByokCallbackHandler.MAX_RUNS + 1)]
    for run_id in runs:  # as LangChain calls it: runs that start and, here, never end
        handler.on_chat_model_start({}, [[]], run_id=run_id, metadata={"ls_model_name": f"model-{run_id}"})
    oldest, newest = RuntimeError("oldest"), RuntimeError("newest")
    handler.on_llm_error(oldest, run_id=runs[0])
    handler.on_llm_error(newest, run_id=runs[-1])
    assert [getattr(annotations_of(exc), "model", None) for exc in (oldest, newest)] == [None, f"model-{runs[-1]}"]


@pytest.fixture
def celery_app(provider_sandbox: ProviderSandbox) -> Celery:
    app = Celery("langchain-eager", broker="memory://", backend="cache+memory://", set_as_current=False)
    byok_tasks.celery.install(app, secret=SECRET)

    @app.task(shared=False, name="reports.summarise")
    def summarise() -> str:
        llm = chat(provider_sandbox, current_key("openai") or sandbox_key("openai", "ok"), ByokCallbackHandler())
        return str(llm.invoke(PROMPT).content)

    return app


def test_feature_is_the_running_tasks_name_when_the_handler_names_none(
    celery_app: Celery, llm_failure_records: FailureRecords
) -> None:
    with byok_context("alice", keys={"openai": sandbox_key("openai", "invalid")}):
        assert celery_app.tasks["reports.summarise"].apply().failed()
    [record] = llm_failure_records
    assert (record.source, record.feature, record.model, record.reason) == (  # type: ignore[attr-defined]
        "byok",
        "reports.summarise",
        "gpt-4o-mini",
        "invalid_key",
    )


SENTRY_TEST = """
import byok_tasks.celery
from celery import Celery
from langchain_openai import ChatOpenAI

from byok_tasks import byok_context, current_key
from byok_tasks.langchain import ByokCallbackHandler
from byok_tasks.testing.sandbox import ProviderSandbox, sandbox_key


def test_one_event(sentry_events):
    app = Celery("langchain-eager", broker="memory://", backend="cache+memory://", set_as_current=False)
    byok_tasks.celery.install(app)

    @app.task(shared=False, name="reports.summarise")
    def summarise():
        llm = ChatOpenAI(model="gpt-4o-mini", base_url=SANDBOX + "/v1", api_key=current_key("openai"),
                         max_retries=0, callbacks=[ByokCallbackHandler()])
        return llm.invoke("Summarise: the quarterly numbers are in.").content

    with byok_context("alice", keys={"openai": sandbox_key("openai", "invalid")}):
        app.tasks["reports.summarise"].apply()
    [event] = sentry_events.all()
    assert {name: event["tags"].get(name) for name in ("llm.source", "llm.model", "llm.feature")} == {
        "llm.source": "byok",
        "llm.model": "gpt-4o-mini",
        "llm.feature": "reports.summarise",
    }
"""


def test_failed_task_gives_one_sentry_event_tagged_with_model_and_feature(
    pytester: pytest.Pytester, provider_sandbox: ProviderSandbox
) -> None:
    # sentry-sdk's own LangChain and OpenAI integrations are active (its defaults) and capture
    # the failure at the call too: ByokIntegration keeps only the event for the task's failure.
    # In a process of its own: sentry-sdk sets its integrations up once per process, and its
    # default LangChain integration turns the OpenAI one off for good.
    pytester.makepyfile(test_langchain_sentry=f"SANDBOX = {provider_sandbox.url!r}\n" + SENTRY_TEST)
    pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=240).assert_outcomes(passed=1)


FALLBACK_TEST = """
import byok_tasks.celery
from celery import Celery
from langchain_openai import ChatOpenAI

from byok_tasks import byok_context, current_key
from byok_tasks.langchain import ByokCallbackHandler
from byok_tasks.testing.sandbox import sandbox_key


def test_each_failure_once(sentry_events, llm_failure_records):
    app = Celery("langchain-fallbacks", broker="memory://", backend="cache+memory://", set_as_current=False)
    byok_tasks.celery.install(app)

    @app.task(shared=False, name="reports.summarise")
    def summarise():
        users = ChatOpenAI(model="gpt-4o-mini", base_url=SANDBOX + "/v1", api_key=current_key("openai"),
                           max_retries=0, callbacks=[ByokCallbackHandler(report=True)])
        platforms = ChatOpenAI(model="gpt-4o", base_url=SANDBOX + "/v1", api_key=sandbox_key("openai", "invalid"),
                               max_retries=0, callbacks=[ByokCallbackHandler(source="platform", report=True)])
        return users.with_fallbacks([platforms]).invoke("Summarise: the quarterly numbers are in.").content

    with byok_context("alice", keys={"openai": sandbox_key("openai", "nocredit")}):
        assert app.tasks["reports.summarise"].apply().failed()
    expected = [("byok", "quota", "gpt-4o-mini"), ("platform", "invalid_key", "gpt-4o")]
    tagged = [(e["tags"]["llm.source"], e["tags"]["llm.reason"], e["tags"]["llm.model"]) for e in sentry_events.all()]
    assert sorted(tagged) == expected
    assert sorted((r.source, r.reason, r.model) for r in llm_failure_records) == expected
"""


def test_with_fallbacks_that_all_fail_reports_each_failure_once(
    pytester: pytest.Pytester, provider_sandbox: ProviderSandbox
) -> None:
    # LangChain re-raises the first model's failure, already reported by its handler: the
    # task's failure is that one, not a third. In a process of its own, as above.
    pytester.makepyfile(test_langchain_fallbacks=f"SANDBOX = {provider_sandbox.url!r}\n" + FALLBACK_TEST)
    pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=240).assert_outcomes(passed=1)


def test_failure_that_propagates_is_left_to_be_reported_where_it_ends(
    provider_sandbox: ProviderSandbox, llm_failure_records: FailureRecords
) -> None:
    llm = chat(provider_sandbox, sandbox_key("openai", "invalid"), ByokCallbackHandler(feature="summaries"))
    raised_by(lambda: llm.invoke(PROMPT))
    assert llm_failure_records == []


def with_fallback(sandbox: ProviderSandbox) -> Any:
    """The user's key first; when it fails, the platform's. The user's failure is handled, so it is reported."""
    primary: BaseChatModel = chat(
        sandbox, sandbox_key("openai", "nocredit"), ByokCallbackHandler("openai", feature="summaries", report=True)
    )
    return primary.with_fallbacks([chat(sandbox, sandbox_key("openai", "ok"), ByokCallbackHandler())])


def test_handled_failure_is_reported_once_when_the_handler_is_asked_to(
    provider_sandbox: ProviderSandbox, llm_failure_records: FailureRecords
) -> None:
    with byok_context("alice", ["openai"]):
        answer = with_fallback(provider_sandbox).invoke(PROMPT)
    assert answer.content == "A short summary from the sandbox."
    assert [(r.source, r.uid, r.reason, r.feature) for r in llm_failure_records] == [  # type: ignore[attr-defined]
        ("byok", "alice", "quota", "summaries")
    ]


def test_reports_of_async_runs_are_written_off_the_event_loop(
    provider_sandbox: ProviderSandbox, llm_failure_records: FailureRecords
) -> None:
    async def summarise() -> int:
        with byok_context("alice", ["openai"]):
            await with_fallback(provider_sandbox).ainvoke(PROMPT)
        return threading.get_ident()

    loop_thread = asyncio.run(summarise())  # asyncio.run waits for the executor's threads before returning
    [record] = llm_failure_records
    assert (record.uid, record.reason) == ("alice", "quota")  # type: ignore[attr-defined]
    assert record.thread != loop_thread


EMBED: list[tuple[str, Callable[[ByokEmbeddings], object]]] = [
    ("embed_query", lambda e: e.embed_query("hello")),
    ("embed_documents", lambda e: e.embed_documents(["hello", "world"])),
    ("aembed_query", lambda e: asyncio.run(e.aembed_query("hello"))),
    ("aembed_documents", lambda e: asyncio.run(e.aembed_documents(["hello", "world"]))),
]


@pytest.mark.parametrize("call", [call for _, call in EMBED], ids=[name for name, _ in EMBED])
def test_embeddings_failure_says_it_was_embeddings_and_which_model(
    provider_sandbox: ProviderSandbox, call: Callable[[ByokEmbeddings], object]
) -> None:
    with byok_context("alice", keys={"openai": sandbox_key("openai", "nocredit")}):
        wrapped = ByokEmbeddings(embeddings(provider_sandbox, current_key("openai")), feature="search")
        failure = classified(raised_by(lambda: call(wrapped)))
    assert (failure.source, failure.reason, failure.operation, failure.model, failure.feature) == (
        "byok",
        "quota",
        "embeddings",
        "text-embedding-3-small",
        "search",
    )
