"""The BYOK context as application code sets and reads it."""

from __future__ import annotations

import asyncio
import threading

import pytest

from byok_tasks import ByokContext, byok_context, current_context


def test_no_context_outside_byok_context() -> None:
    assert current_context() is None


def test_byok_context_sets_uid_and_providers() -> None:
    with byok_context("alice", ["openai", "anthropic"]) as context:
        assert current_context() == context == ByokContext("alice", frozenset({"openai", "anthropic"}))
    assert current_context() is None


def test_nested_contexts_restore_the_outer_one() -> None:
    with byok_context("alice", ["openai"]) as outer:
        with byok_context("bob"):
            assert current_context() == ByokContext("bob")
        assert current_context() is outer


def test_context_is_restored_when_the_body_raises() -> None:
    with pytest.raises(RuntimeError), byok_context("alice"):
        raise RuntimeError("boom")
    assert current_context() is None


def test_uses_own_key_only_for_listed_providers() -> None:
    context = ByokContext("alice", frozenset({"openai"}))
    assert context.uses_own_key("openai")
    assert not context.uses_own_key("anthropic")


def test_context_is_frozen() -> None:
    context = ByokContext("alice")
    with pytest.raises(AttributeError):
        context.uid = "mallory"  # type: ignore[misc]


def test_a_single_string_of_providers_is_a_clear_error() -> None:
    with pytest.raises(TypeError, match="not a single string"), byok_context("alice", "openai"):
        pass


@pytest.mark.parametrize("uid", ["", "x" * 257, "line\nbreak", None, 42])
def test_invalid_uid_is_refused_where_it_is_set(uid: object) -> None:
    with pytest.raises(ValueError, match="uid"):
        ByokContext(uid)  # type: ignore[arg-type]


@pytest.mark.parametrize("provider", ["OpenAI", "", "a b", "x" * 33, 7])
def test_invalid_provider_name_is_refused(provider: object) -> None:
    with pytest.raises(ValueError, match="provider"):
        ByokContext("alice", frozenset({provider}))  # type: ignore[arg-type]


def test_threads_do_not_see_each_others_context() -> None:
    seen = []
    with byok_context("alice"):
        thread = threading.Thread(target=lambda: seen.append(current_context()))
        thread.start()
        thread.join()
    assert seen == [None]


def test_asyncio_tasks_inherit_the_context_they_were_created_in() -> None:
    async def main() -> list[object]:
        async def read() -> object:
            return current_context()

        with byok_context("alice"):
            inside = asyncio.create_task(read())
        outside = asyncio.create_task(read())
        return [await inside, await outside]

    assert asyncio.run(main()) == [ByokContext("alice"), None]


def test_a_provider_name_byok_tasks_does_not_know_is_warned_about_once(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING", logger="byok_tasks.context"):
        for _ in range(3):
            with byok_context("alice", ["azure-not-a-provider"]):
                pass
    warnings = [r for r in caplog.records if "azure-not-a-provider" in r.getMessage()]
    assert len(warnings) == 1
    assert "azure_openai" in warnings[0].getMessage()  # the names it could have meant


def test_providers_given_as_a_generator_all_count() -> None:
    with byok_context("alice", (name for name in ["openai", "anthropic"])) as context:
        assert context.providers == {"openai", "anthropic"}


def test_a_key_given_as_a_provider_name_is_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    key = "sk-live-" + "0123456789abcdef"  # lowercase and short enough to pass for a name
    with caplog.at_level("WARNING", logger="byok_tasks.context"), byok_context("alice", [key]):
        pass
    assert caplog.records
    assert all(key not in record.getMessage() for record in caplog.records)


def test_llm_call_refuses_a_provider_name_that_is_not_one() -> None:
    from byok_tasks import llm_call

    with pytest.raises(ValueError, match="provider name"):
        llm_call("OpenAI")
