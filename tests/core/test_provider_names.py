"""Every API that takes a provider name checks it the same way.

A name that never matches a failing call's provider ("OpenAI" for "openai") would file a
user's failures as the platform's, or make ``current_key(...) or PLATFORM_KEY`` spend the
platform's key: it is an error wherever it is given.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable

import pytest

from byok_tasks import byok_context, current_key, llm_call, report_llm_error


def enter_a_context(name: str) -> None:
    with byok_context("alice", [name]):
        pass


APIS: dict[str, Callable[[str], object]] = {
    "byok_context": enter_a_context,
    "llm_call": lambda name: llm_call(name),
    "current_key": lambda name: current_key(name),
    "report_llm_error": lambda name: report_llm_error(RuntimeError("failed"), provider=name),
}


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("name", ["OpenAI", "open ai", "", "x" * 33])
def test_a_malformed_provider_name_is_an_error(api: str, name: str) -> None:
    with pytest.raises(ValueError, match="invalid provider name"):
        APIS[api](name)


@pytest.mark.parametrize("api", APIS)
def test_a_name_without_a_table_warns_once(api: str, caplog: pytest.LogCaptureFixture) -> None:
    name = f"acme-{uuid.uuid4().hex[:8]}"
    with caplog.at_level(logging.WARNING, logger="byok_tasks.context"):
        APIS[api](name)
        APIS[api](name)
    assert len([r for r in caplog.records if "has no table" in r.getMessage()]) == 1


def test_a_known_name_says_nothing(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="byok_tasks.context"):
        for api in APIS.values():
            api("deepseek")
    assert not caplog.records
