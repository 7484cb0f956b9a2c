"""A header that cannot be trusted never crashes a Dramatiq worker and never runs a message as someone else.

Each bad header is written into the message's options as a forger with access to the
broker would, on Redis and on RabbitMQ.
"""

from __future__ import annotations

import uuid

import pytest

from byok_tasks import ByokContext
from byok_tasks.header import HeaderCodec
from tests.support.bad_headers import ALICE, BAD_HEADERS, raw_header_in
from tests.support.dramatiq_worker import (  # noqa: F401
    BROKERS,
    DramatiqWorker,
    DramatiqWorkerFactory,
    dramatiq_worker_factory_fixture,
    runs,
    seen,
)


@pytest.fixture(params=BROKERS)
def worker(request: pytest.FixtureRequest, dramatiq_worker_factory: DramatiqWorkerFactory) -> DramatiqWorker:
    return dramatiq_worker_factory(request.param)


@pytest.fixture(scope="module")
def strict_worker(dramatiq_worker_factory: DramatiqWorkerFactory) -> DramatiqWorker:
    return dramatiq_worker_factory("redis", require_signature=True)


def marker() -> str:
    return uuid.uuid4().hex


@pytest.mark.parametrize("header", BAD_HEADERS.values(), ids=BAD_HEADERS.keys())
def test_bad_header_runs_the_message_without_context(worker: DramatiqWorker, header: object) -> None:
    message = worker.actors["whoami"].send_with_options(args=(mark := marker(),), byok=header)
    assert seen(worker, mark) is None
    worker.logged(f"message {message.message_id}: BYOK header refused, running without a BYOK context")


@pytest.mark.parametrize("header", BAD_HEADERS.values(), ids=BAD_HEADERS.keys())
def test_bad_header_refuses_a_required_actor_without_retrying_it(worker: DramatiqWorker, header: object) -> None:
    message = worker.actors["whoami_required"].send_with_options(args=(marker(),), byok=header)
    [run] = runs(worker, message)  # one run, failed for good: the actor allows 3 retries
    assert run["retries"] == 0
    assert run["exception"].startswith(f"ByokContextRequired: actor whoami_required[{message.message_id}]")
    assert "requires a BYOK context: header" in run["exception"]


@pytest.mark.parametrize("header", BAD_HEADERS.values(), ids=BAD_HEADERS.keys())
def test_warning_names_the_message_but_never_echoes_the_header(worker: DramatiqWorker, header: object) -> None:
    message = worker.actors["whoami_required"].send_with_options(args=(marker(),), byok=header)
    [run] = runs(worker, message)
    log = worker.logged(f"message {message.message_id}: BYOK header refused")
    assert not raw_header_in(log, header)
    assert not raw_header_in(run["exception"], header)


def test_worker_keeps_serving_after_bad_headers(worker: DramatiqWorker) -> None:
    for header in BAD_HEADERS.values():
        worker.actors["whoami"].send_with_options(args=(marker(),), byok=header)
    worker.actors["whoami"].send_with_options(args=(mark := marker(),), byok=ALICE)
    assert seen(worker, mark) == ["alice", ["openai"]]
    assert worker.alive()


def test_strict_worker_refuses_an_unsigned_header(strict_worker: DramatiqWorker) -> None:
    unsigned = HeaderCodec().encode(ByokContext("alice", frozenset({"openai"})))
    message = strict_worker.actors["whoami"].send_with_options(args=(mark := marker(),), byok=unsigned)
    assert seen(strict_worker, mark) is None
    strict_worker.logged(
        f"message {message.message_id}: BYOK header refused, running without a BYOK context: header is unsigned"
    )


def test_strict_worker_accepts_a_signed_header(strict_worker: DramatiqWorker) -> None:
    strict_worker.actors["whoami"].send_with_options(args=(mark := marker(),), byok=ALICE)
    assert seen(strict_worker, mark) == ["alice", ["openai"]]
