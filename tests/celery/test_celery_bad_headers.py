"""A header that cannot be trusted never crashes the worker and never runs a task as someone else."""

from __future__ import annotations

from typing import Any

import pytest

from byok_tasks import ByokContext
from byok_tasks.header import HeaderCodec
from tests.support.brokers import BROKERS, broker_for
from tests.support.headers import ALICE, BAD_HEADERS, raw_header_in
from tests.support.timing import TIMEOUT


@pytest.fixture(params=BROKERS)
def worker(request: pytest.FixtureRequest, worker_factory: Any) -> Any:
    return worker_factory(broker_for(request, request.param), "solo")


@pytest.fixture(scope="module")
def strict_worker(redis_url: str, worker_factory: Any) -> Any:
    return worker_factory(redis_url, "solo", require_signature=True)


@pytest.mark.parametrize("header", BAD_HEADERS.values(), ids=BAD_HEADERS.keys())
def test_bad_header_runs_the_task_without_context(worker: Any, header: object) -> None:
    result = worker.app.tasks["whoami"].apply_async(headers={"byok": header})
    assert result.get(timeout=TIMEOUT) is None
    assert f"[{result.id}]: BYOK header refused" in worker.log()


@pytest.mark.parametrize("header", BAD_HEADERS.values(), ids=BAD_HEADERS.keys())
def test_bad_header_refuses_a_task_that_requires_context(worker: Any, header: object) -> None:
    result = worker.app.tasks["whoami_required"].apply_async(headers={"byok": header})
    with pytest.raises(Exception, match="requires a BYOK context: header") as caught:
        result.get(timeout=TIMEOUT)
    assert type(caught.value).__name__ == "ByokContextRequired"


@pytest.mark.parametrize("header", BAD_HEADERS.values(), ids=BAD_HEADERS.keys())
def test_warning_names_the_task_but_never_echoes_the_header(worker: Any, header: object) -> None:
    result = worker.app.tasks["whoami"].apply_async(headers={"byok": header})
    result.get(timeout=TIMEOUT)
    log = worker.log()
    assert result.id in log
    assert not raw_header_in(log, header)


def test_worker_keeps_serving_after_bad_headers(worker: Any) -> None:
    for header in BAD_HEADERS.values():
        worker.app.tasks["whoami"].apply_async(headers={"byok": header}).get(timeout=TIMEOUT)
    assert worker.alive()
    result = worker.app.tasks["whoami"].apply_async(headers={"byok": ALICE})
    assert result.get(timeout=TIMEOUT) == ["alice", ["openai"]]


def test_required_task_without_any_context_is_refused_once_not_retried(worker: Any) -> None:
    result = worker.app.tasks["required_with_autoretry"].delay()
    with pytest.raises(Exception, match="requires a BYOK context: none was set where it was enqueued"):
        result.get(timeout=TIMEOUT)
    assert result.state == "FAILURE"
    assert worker.log().count(f"required_with_autoretry[{result.id}] retry") == 0


def test_strict_worker_refuses_an_unsigned_header(strict_worker: Any) -> None:
    unsigned = HeaderCodec().encode(ByokContext("alice", frozenset({"openai"})))
    result = strict_worker.app.tasks["whoami"].apply_async(headers={"byok": unsigned})
    assert result.get(timeout=TIMEOUT) is None
    assert "unsigned and this worker requires signed headers" in strict_worker.log()


def test_strict_worker_accepts_a_signed_header(strict_worker: Any) -> None:
    result = strict_worker.app.tasks["whoami"].apply_async(headers={"byok": ALICE})
    assert result.get(timeout=TIMEOUT) == ["alice", ["openai"]]


def test_header_nested_the_way_sentry_nests_it_is_found(worker: Any) -> None:
    result = worker.app.tasks["whoami"].apply_async(headers={"headers": {"byok": ALICE}})
    assert result.get(timeout=TIMEOUT) == ["alice", ["openai"]]
