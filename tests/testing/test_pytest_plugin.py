"""The pytest plugin as a team would use it: a test file of their own, run by pytest in a process of its own.

The plugin is loaded the way users get it, through the ``pytest11`` entry point of the
installed package; their task calls the real OpenAI SDK, failing against the loopback
sandbox, and sentry-sdk sends real envelopes to the plugin's loopback collector.
"""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

USER_APP = """
import openai
import pytest
from celery import Celery

import byok_tasks.celery
from byok_tasks import current_key
from byok_tasks.testing.sandbox import ProviderSandbox, sandbox_key

PLATFORM_KEY = sandbox_key("openai", "nocredit")


@pytest.fixture(scope="module")
def sandbox():
    with ProviderSandbox() as sandbox:
        yield sandbox


@pytest.fixture
def summarise(sandbox):
    app = Celery("team-app", broker="memory://", backend="cache+memory://", set_as_current=False)
    byok_tasks.celery.install(app)

    @app.task(shared=False, name="reports.summarise")
    def summarise(document):
        client = openai.OpenAI(
            api_key=current_key("openai") or PLATFORM_KEY, base_url=sandbox.url + "/v1", max_retries=0
        )
        reply = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "Summarise " + document}]
        )
        return reply.choices[0].message.content

    return summarise
"""

USER_TESTS = """
import openai
import pytest
import sentry_sdk

from byok_tasks import current_key
from byok_tasks.testing.sandbox import sandbox_key


def test_revoked_user_key_is_a_warning_about_that_user(summarise, run_under_byok, sentry_events, llm_failure_records):
    result = run_under_byok(summarise, ["doc-1"], uid="alice", keys={"openai": sandbox_key("openai", "invalid")})
    assert result.failed()
    [event] = sentry_events.tagged({"llm.source": "byok", "llm.reason": "invalid_key"})
    assert (event["level"], event["user"]["id"], event["tags"]["llm.feature"]) == (
        "warning", "alice", "reports.summarise"
    )
    [record] = llm_failure_records.where(source="byok", uid="alice")
    assert record.feature == "reports.summarise"


def test_platform_out_of_credit_is_an_error_of_ours(summarise, run_under_byok, sentry_events, llm_failure_records):
    assert run_under_byok(summarise, ["doc-1"], uid="bob").failed()
    [event] = sentry_events.tagged({"llm.source": "platform"})
    assert (event["level"], event["tags"]["llm.reason"], event["tags"]["llm.status"]) == ("error", "quota", "429")
    [record] = llm_failure_records.where(source="platform", uid="bob")
    assert (record.reason, record.status) == ("quota", 429)


def test_a_plain_function_runs_with_the_users_key(run_under_byok):
    key = sandbox_key("openai", "ok")
    assert run_under_byok(current_key, ["openai"], uid="alice", keys={"openai": key}) == key


def test_succeeding_task_sends_nothing(summarise, run_under_byok, sentry_events, llm_failure_records):
    result = run_under_byok(summarise, ["doc-1"], uid="alice", keys={"openai": sandbox_key("openai", "ok")})
    assert result.get() == "A short summary from the sandbox."
    assert (sentry_events.all(), list(llm_failure_records)) == ([], [])


def summarise_plainly(base_url):
    client = openai.OpenAI(api_key=current_key("openai"), base_url=base_url, max_retries=0)
    return client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])


def test_a_plain_functions_failure_is_reported_and_raised(sandbox, run_under_byok, sentry_events, llm_failure_records):
    with pytest.raises(openai.AuthenticationError):
        invalid = {"openai": sandbox_key("openai", "invalid")}
        run_under_byok(summarise_plainly, [sandbox.url + "/v1"], uid="carol", keys=invalid)
    [event] = sentry_events.tagged({"llm.source": "byok", "llm.reason": "invalid_key"})
    assert event["tags"]["llm.feature"] == "test_summaries.summarise_plainly"
    [record] = llm_failure_records.where(source="byok", uid="carol")
    assert record.feature == "test_summaries.summarise_plainly"


def test_zz_the_previous_sentry_client_is_back_after_a_test():
    assert not sentry_sdk.get_client().is_active()
"""


def test_a_team_tests_its_own_task_failures_without_a_sentry_account(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(USER_APP)
    pytester.makepyfile(test_summaries=USER_TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=240)
    result.assert_outcomes(passed=6)


def test_a_wrong_expectation_about_the_events_fails_the_teams_test(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(USER_APP)
    pytester.makepyfile(
        test_summaries="""
        from byok_tasks.testing.sandbox import sandbox_key

        def test_expects_a_platform_event(summarise, run_under_byok, sentry_events):
            run_under_byok(summarise, ["doc-1"], uid="alice", keys={"openai": sandbox_key("openai", "invalid")})
            assert sentry_events.tagged({"llm.source": "platform"})
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=240)
    result.assert_outcomes(failed=1)
