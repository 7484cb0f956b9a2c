"""Whether, and when, to retry a failed LLM call: the policy behind ``llm_retry`` for Celery and RQ.

Only failures that can clear by themselves are retried (:data:`byok_tasks.failure.RETRYABLE_REASONS`:
``rate_limit``, ``overloaded``, ``server_error``, ``timeout``, ``connection``). A user out of
credits, a revoked key, a missing permission, a prompt too long or a refused content fail
at once: retrying them spends the worker's time and the user's patience, and the user
hears about it minutes later than they could have.

The wait is the provider's own ``retry-after`` when it sent one (capped at
``retry_after_max``, with a little jitter added so that a burst of tasks does not come back
in the same millisecond); otherwise exponential backoff, ``backoff * 2**retries`` capped
at ``backoff_max``, with "equal jitter": half of that fixed, the other half random. The
fixed half keeps even the first retry from firing at once.

This module imports no framework: :func:`byok_tasks.celery.llm_retry` and
:func:`byok_tasks.rq.llm_retry` apply its decisions.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from .failure import RETRYABLE_REASONS, LLMFailure
from .report import failure_of

__all__ = ["RetryDecision", "RetryPolicy"]

# Added to a provider's retry-after, as a fraction of it: enough to spread a burst, too
# little to come back noticeably later than asked.
_RETRY_AFTER_JITTER = 0.1


@dataclass(frozen=True, slots=True)
class RetryDecision:
    """What to do with one LLM failure: retry after ``delay`` seconds, or let it fail now.

    ``why`` says which, in words for a log line (it never holds the provider's message, which
    can quote a key).
    """

    failure: LLMFailure
    retry: bool
    delay: float
    why: str


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Retry LLM failures that can clear by themselves, at most ``max_retries`` times.

    ``retries`` counts the retries already made (Celery's ``request.retries``), so the
    first failure of a task is decided with ``retries=0``.
    """

    max_retries: int = 5
    backoff: float = 1.0
    backoff_max: float = 60.0
    retry_after_max: float = 60.0
    jitter: bool = True
    random: Callable[[], float] = field(default=random.random, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ValueError("max_retries must be 0 or more")
        if self.backoff <= 0 or self.backoff_max < self.backoff:
            raise ValueError("backoff must be positive and backoff_max at least backoff")
        if self.retry_after_max <= 0:
            raise ValueError("retry_after_max must be positive")

    def decide(self, exc: BaseException, retries: int) -> RetryDecision | None:
        """The decision for ``exc`` after ``retries`` retries; None when ``exc`` is no LLM failure,
        which the framework's own retry settings then handle as they would without byok-tasks."""
        failure = failure_of(exc)
        if failure is None:
            return None
        return self.decide_failure(failure, retries)

    def decide_failure(self, failure: LLMFailure, retries: int) -> RetryDecision:
        label = f"{failure.source} {failure.provider} {failure.reason}"
        if failure.reason not in RETRYABLE_REASONS:
            return RetryDecision(failure, False, 0.0, f"{label} is not retried: it does not clear by itself")
        if retries >= self.max_retries:
            return RetryDecision(failure, False, 0.0, f"{label}: gave up after {retries} retries")
        delay, basis = self._delay(failure, retries)
        return RetryDecision(
            failure, True, delay, f"{label}: retry {retries + 1} of {self.max_retries} in {delay:.2f} s ({basis})"
        )

    def _delay(self, failure: LLMFailure, retries: int) -> tuple[float, str]:
        if failure.retry_after is not None and failure.retry_after >= 0:
            wait = min(failure.retry_after, self.retry_after_max)
            capped = " (capped)" if failure.retry_after > self.retry_after_max else ""
            spread = wait * _RETRY_AFTER_JITTER * self.random() if self.jitter else 0.0
            return wait + spread, f"the provider asked for {failure.retry_after:g} s{capped}"
        # The exponent is bounded: 2.0**1024 overflows, and backoff_max is reached long before.
        ceiling = min(self.backoff * 2.0 ** min(retries, 64), self.backoff_max)
        if not self.jitter:
            return ceiling, "backoff"
        return ceiling / 2 + ceiling / 2 * self.random(), "backoff with jitter"
