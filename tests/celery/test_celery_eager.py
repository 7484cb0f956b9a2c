"""Eager mode publishes nothing: the caller's own context is the one in force."""

from __future__ import annotations

import logging
from typing import Any

import openai
import pytest
from celery import Celery

import byok_tasks.celery
from byok_tasks import ByokContext, ByokContextRequired, byok_context, current_context
from byok_tasks.testing.sandbox import sandbox_key
from tests.support.celery_worker import SECRET


@pytest.fixture
def app() -> Celery:
    app = Celery("eager", broker="memory://", backend="cache+memory://", set_as_current=False)
    app.conf.task_always_eager = True
    byok_tasks.celery.install(app, secret=SECRET)

    @app.task(shared=False, name="eager.whoami")
    def whoami() -> ByokContext | None:
        return current_context()

    @app.task(shared=False, name="eager.required", byok_required=True)
    def required() -> ByokContext | None:
        return current_context()

    return app


def test_eager_task_sees_the_callers_context(app: Celery) -> None:
    with byok_context("alice", ["openai"]) as context:
        assert app.tasks["eager.whoami"].delay().get() == context


def test_eager_task_leaves_the_callers_context_in_force(app: Celery) -> None:
    with byok_context("alice", ["openai"]) as context:
        app.tasks["eager.whoami"].delay().get()
        assert current_context() is context


def test_eager_task_without_context_sees_none(app: Celery) -> None:
    assert app.tasks["eager.whoami"].delay().get() is None


def test_eager_required_task_without_context_is_refused(app: Celery) -> None:
    with pytest.raises(ByokContextRequired):
        app.tasks["eager.required"].delay().get()


def test_install_twice_with_the_same_settings_changes_nothing(app: Celery) -> None:
    byok_tasks.celery.install(app, secret=SECRET)
    with byok_context("alice") as context:
        assert app.tasks["eager.whoami"].delay().get() == context


def test_install_with_other_settings_is_a_clear_error(app: Celery) -> None:
    with pytest.raises(ValueError, match="other settings"):
        byok_tasks.celery.install(app, secret="another-secret")


def test_required_task_is_refused_on_an_app_never_finalized() -> None:
    # The usual unit test: define a task, then apply() it, without anything finalizing the app.
    app = Celery("fresh", broker="memory://", set_as_current=False)
    byok_tasks.celery.install(app, secret=SECRET)

    @app.task(shared=False, byok_required=True)
    def required() -> None:
        return None

    assert not app.finalized
    with pytest.raises(ByokContextRequired):
        required.apply(throw=True)


def test_eager_llm_failure_is_logged_from_the_sdks_own_exception(
    provider_sandbox: Any, caplog: pytest.LogCaptureFixture
) -> None:
    app = Celery("fresh", broker="memory://", set_as_current=False)
    byok_tasks.celery.install(app, secret=SECRET)

    @app.task(shared=False, name="eager.summarize")
    def summarize() -> None:
        client = openai.OpenAI(
            api_key=sandbox_key("openai", "nocredit"), base_url=f"{provider_sandbox.url}/v1", max_retries=0
        )
        client.models.list()

    with caplog.at_level(logging.WARNING, logger="byok_tasks.failures"), byok_context("alice"):
        summarize.apply()
    [record] = [r for r in caplog.records if r.name == "byok_tasks.failures"]
    assert (record.reason, record.status, record.feature) == ("quota", 429, "eager.summarize")


def test_required_task_under_a_context_with_no_byok_provider_is_refused(app: Celery) -> None:
    # A signed-in user without keys of their own: the task would run on the platform's keys.
    with byok_context("emma"), pytest.raises(ByokContextRequired, match="makes no provider BYOK"):
        app.tasks["eager.required"].delay().get()
