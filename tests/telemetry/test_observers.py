"""The observer seam of byok_tasks.report: every classified failure goes through it once."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest
from celery import Celery

import byok_tasks.celery
from byok_tasks import byok_context, report_llm_error
from byok_tasks import report as report_module
from byok_tasks.failure import LLMFailure
from byok_tasks.testing.sandbox import ProviderSandbox
from tests.support.celery_worker import SECRET
from tests.support.ids import new_uid
from tests.telemetry.support import openai_failure


class Seen:
    def __init__(self) -> None:
        self.failures: list[LLMFailure] = []
        self.exceptions: list[BaseException] = []
        self.held_back: list[LLMFailure] = []

    def failure(self, failure: LLMFailure, exc: BaseException) -> None:
        self.failures.append(failure)
        self.exceptions.append(exc)

    def suppressed(self, failure: LLMFailure) -> None:
        self.held_back.append(failure)


@pytest.fixture
def seen() -> Iterator[Seen]:
    seen = Seen()
    report_module.add_failure_observer(seen.failure)
    report_module.add_held_back_observer(seen.suppressed)
    yield seen
    report_module.remove_failure_observer(seen.failure)
    report_module.remove_held_back_observer(seen.suppressed)


@pytest.fixture
def app(provider_sandbox: ProviderSandbox) -> Celery:
    app = Celery("observed", broker="memory://", backend="cache+memory://", set_as_current=False)
    app.conf.task_always_eager = True
    byok_tasks.celery.install(app, secret=SECRET)
    url = provider_sandbox.url

    @app.task(shared=False, name="observed.fails")
    def fails() -> None:
        raise openai_failure(url)

    @app.task(shared=False, name="observed.reports_then_raises")
    def reports_then_raises() -> None:
        exc = openai_failure(url)
        report_llm_error(exc)
        raise exc

    return app


def test_reported_failure_reaches_the_observer_with_its_exception(
    seen: Seen, provider_sandbox: ProviderSandbox
) -> None:
    exc = openai_failure(provider_sandbox.url, "nocredit")
    failure = report_llm_error(exc, feature="digest")
    assert seen.failures == [failure]
    assert seen.exceptions == [exc]


def test_task_failure_reaches_the_observer_with_the_task_as_feature(seen: Seen, app: Celery) -> None:
    with byok_context(new_uid(), ["openai"]), pytest.raises(openai.OpenAIError):
        app.tasks["observed.fails"].delay().get()
    assert [(f.source, f.reason, f.feature) for f in seen.failures] == [("byok", "invalid_key", "observed.fails")]


def test_failure_reported_then_raised_by_the_task_is_observed_once(seen: Seen, app: Celery) -> None:
    with pytest.raises(openai.OpenAIError):
        app.tasks["observed.reports_then_raises"].delay().get()
    assert len(seen.failures) == 1


def test_what_is_no_llm_failure_is_not_observed(seen: Seen) -> None:
    assert report_llm_error(ValueError("not an LLM failure")) is None
    assert seen.failures == []


def test_an_observer_that_raises_costs_neither_the_report_nor_the_other_observers(
    seen: Seen, provider_sandbox: ProviderSandbox
) -> None:
    def broken(failure: LLMFailure, exc: BaseException) -> None:
        raise RuntimeError("an exporter bug")

    report_module.add_failure_observer(broken)
    try:
        # Added after `seen`, so it runs second; one added before must not stop `seen` either.
        report_module.remove_failure_observer(seen.failure)
        report_module.add_failure_observer(seen.failure)
        failure = report_llm_error(openai_failure(provider_sandbox.url))
    finally:
        report_module.remove_failure_observer(broken)
    assert failure is not None
    assert seen.failures == [failure]


def test_adding_an_observer_twice_observes_each_failure_once(seen: Seen, provider_sandbox: ProviderSandbox) -> None:
    report_module.add_failure_observer(seen.failure)
    report_llm_error(openai_failure(provider_sandbox.url))
    assert len(seen.failures) == 1


def test_events_storm_control_holds_back_reach_the_held_back_observer(
    seen: Seen, sentry: Any, provider_sandbox: ProviderSandbox
) -> None:
    with byok_context(new_uid(), ["openai"]):
        for _ in range(3):
            report_llm_error(openai_failure(provider_sandbox.url))
    assert len(seen.failures) == 3
    assert [(f.source, f.reason) for f in seen.held_back] == [("byok", "invalid_key")] * 2
