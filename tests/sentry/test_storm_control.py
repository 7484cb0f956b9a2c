"""Storm control, on its own: a budget per user, provider and reason, and an honest count of what it held back."""

from __future__ import annotations

import threading
from dataclasses import replace

import pytest

from byok_tasks import LLMFailure
from byok_tasks.storm import StormControl

BEN = LLMFailure(
    source="byok",
    provider="openai",
    reason="invalid_key",
    status=401,
    code="invalid_api_key",
    retry_after=None,
    retryable=False,
    model="gpt-4o-mini",
    feature="summarize",
    operation="chat",
    uid="ben",
    error_type="openai.AuthenticationError",
    message="Incorrect API key provided: [REDACTED]",
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_first_failure_is_sent_and_the_rest_of_the_window_held_back() -> None:
    storm = StormControl(budget=1, window=600, clock=Clock())
    assert [storm.admit(BEN) for _ in range(5)] == [0, None, None, None, None]


def test_next_event_after_the_window_carries_how_many_were_held_back() -> None:
    clock = Clock()
    storm = StormControl(budget=2, window=600, clock=clock)
    for _ in range(10):
        storm.admit(BEN)
    clock.now += 600
    assert storm.admit(BEN) == 8
    assert storm.admit(BEN) == 0


def test_each_user_provider_and_reason_has_its_own_budget() -> None:
    storm = StormControl(budget=1, window=600, clock=Clock())
    assert storm.admit(BEN) == 0
    assert storm.admit(replace(BEN, uid="chloe")) == 0
    assert storm.admit(replace(BEN, provider="anthropic")) == 0
    assert storm.admit(replace(BEN, reason="quota")) == 0
    assert storm.admit(BEN) is None


def test_platform_failures_are_never_held_back_by_default() -> None:
    storm = StormControl(budget=1, window=600, clock=Clock())
    platform = replace(BEN, source="platform")
    assert [storm.admit(platform) for _ in range(3)] == [0, 0, 0]


def test_platform_failures_can_be_limited_too() -> None:
    storm = StormControl(budget=1, window=600, platform=True, clock=Clock())
    platform = replace(BEN, source="platform")
    assert [storm.admit(platform) for _ in range(3)] == [0, None, None]


def test_memory_stays_bounded_under_a_flood_of_distinct_users() -> None:
    storm = StormControl(budget=1, window=600, clock=Clock())
    for n in range(StormControl.MAX_KEYS * 2):
        storm.admit(replace(BEN, uid=f"user-{n}"))
    assert len(storm._windows) <= StormControl.MAX_KEYS


def test_concurrent_failures_never_exceed_the_budget() -> None:
    storm = StormControl(budget=3, window=600, clock=Clock())
    admitted: list[int | None] = []
    lock = threading.Lock()

    def fail_many() -> None:
        for _ in range(500):
            outcome = storm.admit(BEN)
            with lock:
                admitted.append(outcome)

    threads = [threading.Thread(target=fail_many) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(outcome is not None for outcome in admitted) == 3


@pytest.mark.parametrize(("budget", "window"), [(0, 600), (1, 0)])
def test_nonsensical_settings_are_refused(budget: int, window: float) -> None:
    with pytest.raises(ValueError):
        StormControl(budget=budget, window=window)
