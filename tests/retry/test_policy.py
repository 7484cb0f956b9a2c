"""The retry policy's decisions on their own: which reasons, how long, how often (no worker needed)."""

from __future__ import annotations

import pytest

from byok_tasks.failure import RETRYABLE_REASONS, LLMFailure, Reason
from byok_tasks.retry import RetryPolicy
from tests.retry.provider import NOT_RETRIED, RETRIED


def failure(reason: Reason, *, retry_after: float | None = None) -> LLMFailure:
    return LLMFailure(
        source="byok",
        provider="openai",
        reason=reason,
        status=429,
        code=None,
        retry_after=retry_after,
        retryable=reason in RETRYABLE_REASONS,
        model="gpt-4o-mini",
        feature="summary",
        operation="chat",
        uid="alice",
        error_type="openai.RateLimitError",
        message="Incorrect API key provided: sk-proj-abcd1234",
    )


def test_the_tests_cover_every_retryable_reason_and_only_those() -> None:
    assert set(RETRIED) == RETRYABLE_REASONS
    assert not set(NOT_RETRIED) & RETRYABLE_REASONS


@pytest.mark.parametrize("reason", [*NOT_RETRIED, "model_not_found", "bad_request", "unknown"])
def test_a_reason_that_does_not_clear_by_itself_is_never_retried(reason: Reason) -> None:
    assert not RetryPolicy().decide_failure(failure(reason), 0).retry


def test_the_providers_retry_after_is_the_wait_plus_at_most_a_tenth() -> None:
    policy = RetryPolicy(random=lambda: 1.0)
    assert policy.decide_failure(failure("rate_limit", retry_after=2.0), 0).delay == pytest.approx(2.2)
    assert RetryPolicy(random=lambda: 0.0).decide_failure(failure("rate_limit", retry_after=2.0), 0).delay == 2.0


def test_the_providers_retry_after_is_capped() -> None:
    decision = RetryPolicy(retry_after_max=30, jitter=False).decide_failure(failure("rate_limit", retry_after=600), 0)
    assert decision.delay == 30
    assert "(capped)" in decision.why


def test_without_retry_after_the_wait_doubles_up_to_backoff_max() -> None:
    policy = RetryPolicy(max_retries=20, backoff=1, backoff_max=60, jitter=False)
    waits = [policy.decide_failure(failure("overloaded"), retries).delay for retries in range(8)]
    assert waits == [1, 2, 4, 8, 16, 32, 60, 60]


def test_jitter_keeps_at_least_half_of_the_backoff() -> None:
    low, high = (RetryPolicy(backoff=4, random=lambda r=r: r) for r in (0.0, 1.0))
    assert low.decide_failure(failure("server_error"), 1).delay == 4
    assert high.decide_failure(failure("server_error"), 1).delay == 8


def test_a_long_run_of_retries_does_not_overflow() -> None:
    policy = RetryPolicy(max_retries=10_000, jitter=False)
    assert policy.decide_failure(failure("timeout"), 5_000).delay == policy.backoff_max


def test_the_policy_gives_up_after_max_retries() -> None:
    policy = RetryPolicy(max_retries=2)
    assert [policy.decide_failure(failure("connection"), retries).retry for retries in range(4)] == [
        True,
        True,
        False,
        False,
    ]


def test_an_exception_that_is_no_llm_failure_gets_no_decision() -> None:
    assert RetryPolicy().decide(ValueError("not an LLM failure"), 0) is None


def test_the_reason_given_in_logs_never_quotes_the_providers_message() -> None:
    for reason in ("invalid_key", "rate_limit"):
        assert "sk-proj" not in RetryPolicy().decide_failure(failure(reason), 0).why


@pytest.mark.parametrize(
    "settings",
    [{"max_retries": -1}, {"backoff": 0}, {"backoff": 10, "backoff_max": 5}, {"retry_after_max": 0}],
    ids=str,
)
def test_settings_that_make_no_sense_are_refused(settings: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**settings)  # type: ignore[arg-type]
