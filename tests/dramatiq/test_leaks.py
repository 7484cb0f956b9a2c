"""One worker thread runs every message in turn: no message may see, or leave behind, another's context."""

from __future__ import annotations

import uuid
from typing import Any

from byok_tasks import byok_context
from tests.apps.dramatiq_app import leaks_key
from tests.support.dramatiq_worker import DramatiqWorkerFactory, dramatiq_worker_factory_fixture, seen  # noqa: F401

MESSAGES = 300


def _interleaved_expectations(count: int) -> list[list[Any] | None]:
    users = [f"user-{n}" for n in range(7)]
    providers = [["openai"], ["anthropic", "openai"], ["google"], []]
    return [None if i % 2 else [users[i % len(users)], providers[i % len(providers)]] for i in range(count)]


def test_no_context_leaks_between_interleaved_messages_on_one_thread(
    dramatiq_worker_factory: DramatiqWorkerFactory,
) -> None:
    worker = dramatiq_worker_factory("redis", threads=1)
    expected = _interleaved_expectations(MESSAGES)
    markers = [uuid.uuid4().hex for _ in expected]
    for context, mark in zip(expected, markers, strict=True):
        if context is None:
            worker.actors["whoami"].send(mark)
        else:
            with byok_context(context[0], context[1]):
                worker.actors["whoami"].send(mark)
    got = [seen(worker, mark) for mark in markers]
    assert [(i, want, had) for i, (want, had) in enumerate(zip(expected, got, strict=True)) if want != had] == []
    # The Observer middleware counts every message before or after which a context was in force.
    assert worker.store.get(leaks_key(worker.queue)) is None
