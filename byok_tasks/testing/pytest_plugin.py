"""Fixtures for testing your own BYOK tasks (registered with pytest through the ``pytest11`` entry point).

Installed with byok-tasks, they need no configuration and no Sentry account::

    def test_revoked_key_is_the_users_problem(run_under_byok, sentry_events, llm_failure_records):
        result = run_under_byok(summarise, ["doc-1"], uid="alice", keys={"openai": revoked_key})
        assert result.failed()
        [event] = sentry_events.tagged({"llm.source": "byok", "llm.reason": "invalid_key"})
        assert event["level"] == "warning"
        assert llm_failure_records.where(feature="summarise", uid="alice")

- ``run_under_byok(target, args, kwargs, *, uid, providers=(), keys=None)`` runs a Celery
  task eagerly (``task.apply``; it returns the ``EagerResult``) or calls any callable
  (returning what it returns), under that BYOK context. A callable's LLM failure is
  reported as a worker reports a job's final failure (feature: the callable's
  ``module.qualname``), so ``sentry_events`` and ``llm_failure_records`` see it, and
  raised again: ``with pytest.raises(openai.AuthenticationError): run_under_byok(...)``.
- ``sentry_events`` points a real sentry-sdk client, with :class:`byok_tasks.sentry.ByokIntegration`
  and the default integrations, at a Sentry-protocol collector on loopback for the test,
  and gives back the events it received; the previous client is restored afterwards.
  sentry-sdk sets each integration up once per process, whatever later ``init`` calls ask:
  run tests that need other integrations in a process of their own.
- ``llm_failure_records`` holds the structured ``byok_tasks.failures`` log records of the test.

This module imports no optional dependency until a fixture that needs one is used.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pytest

from byok_tasks import propagation
from byok_tasks.context import byok_context, current_context
from byok_tasks.report import logger as failures_logger

if TYPE_CHECKING:
    from .sandbox import ProviderSandbox
    from .sentry_collector import SentryCollector

__all__ = ["FailureRecords", "SentryEvents"]

Event = dict[str, Any]


def _run_under_byok(
    target: Callable[..., Any],
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    *,
    uid: str,
    providers: Iterable[str] = (),
    keys: Mapping[str, str] | None = None,
) -> Any:
    with byok_context(uid, providers, keys=keys):
        # A Celery task: run it as a worker would (its app finalized, signals and all), without a broker.
        if callable(getattr(target, "apply", None)) and isinstance(getattr(target, "name", None), str):
            target.app.finalize()  # type: ignore[attr-defined]
            return target.apply(args, kwargs)  # type: ignore[attr-defined]
        # A plain callable (an RQ job function, a helper) has no worker around it to report
        # its failure: without this, sentry_events and llm_failure_records would stay empty
        # and a test asserting on them would fail for no visible reason. It is reported as a
        # worker reports a job's final failure, under the callable's name, and raised again.
        name = f"{getattr(target, '__module__', None) or '?'}.{getattr(target, '__qualname__', repr(target))}"
        entered = propagation.enter(current_context(), name)
        try:
            return target(*args, **(kwargs or {}))
        except Exception as exc:
            propagation.task_failed(exc, "run_under_byok")
            raise
        finally:
            propagation.leave(entered)


@pytest.fixture
def run_under_byok() -> Callable[..., Any]:
    """Run a Celery task eagerly, or call a function, under a given BYOK context."""
    return _run_under_byok


class SentryEvents:
    """The events a real sentry-sdk client sent during the test. Every accessor waits for the client to send first."""

    def __init__(self, collector: SentryCollector, flush: Callable[[], None]) -> None:
        self._collector = collector
        self._flush = flush

    def all(self) -> list[Event]:
        self._flush()
        return list(self._collector.events)

    def tagged(self, tags: Mapping[str, str]) -> list[Event]:
        """The events with all of ``tags``, e.g. ``{"llm.source": "byok", "llm.reason": "invalid_key"}``."""
        return [event for event in self.all() if all((event.get("tags") or {}).get(k) == v for k, v in tags.items())]


@pytest.fixture
def byok_provider_sandbox(monkeypatch: pytest.MonkeyPatch) -> Iterator[ProviderSandbox]:
    """OpenAI and Anthropic on loopback, answering by key (see :mod:`byok_tasks.testing.sandbox`),
    with ``OPENAI_BASE_URL`` and ``ANTHROPIC_BASE_URL`` pointing the SDKs at it for this test."""
    from .sandbox import ProviderSandbox

    sandbox = ProviderSandbox()
    with sandbox:
        monkeypatch.setenv("OPENAI_BASE_URL", f"{sandbox.url}/v1")
        monkeypatch.setenv("ANTHROPIC_BASE_URL", sandbox.url)
        yield sandbox


@pytest.fixture(scope="session")
def byok_sentry_collector() -> Iterator[SentryCollector]:
    """The loopback Sentry that ``sentry_events`` sends to, shared by the session."""
    from .sentry_collector import SentryCollector

    with SentryCollector() as collector:
        yield collector


@pytest.fixture
def sentry_events(byok_sentry_collector: SentryCollector) -> Iterator[SentryEvents]:
    """A sentry-sdk client with ``ByokIntegration`` for this test, and the events it sent."""
    import sentry_sdk

    from byok_tasks.sentry import ByokIntegration

    previous = sentry_sdk.get_client()
    byok_sentry_collector.clear()
    sentry_sdk.init(dsn=byok_sentry_collector.dsn, integrations=[ByokIntegration()])
    client = sentry_sdk.get_client()
    try:
        yield SentryEvents(byok_sentry_collector, lambda: client.flush(timeout=10))
    finally:
        client.close(timeout=10)
        sentry_sdk.get_global_scope().set_client(previous)


class FailureRecords(list[logging.LogRecord]):
    """The ``byok_tasks.failures`` records of the test; each has the failure's fields as attributes."""

    def where(self, **fields: object) -> list[logging.LogRecord]:
        """The records whose fields have these values, e.g. ``where(source="byok", reason="quota")``."""
        return [record for record in self if all(getattr(record, k, None) == v for k, v in fields.items())]


class _Collect(logging.Handler):
    def __init__(self, records: FailureRecords) -> None:
        super().__init__(logging.DEBUG)
        self.records = records

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def llm_failure_records() -> Iterator[FailureRecords]:
    """The structured LLM-failure log records written during the test, whatever the logging configuration."""
    records = FailureRecords()
    handler = _Collect(records)
    level = failures_logger.level
    failures_logger.setLevel(logging.DEBUG)
    failures_logger.addHandler(handler)
    try:
        yield records
    finally:
        failures_logger.removeHandler(handler)
        failures_logger.setLevel(level)
