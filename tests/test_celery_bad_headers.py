"""A header that cannot be trusted never crashes the worker and never runs a task as someone else."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from byok_tasks import ByokContext
from byok_tasks.header import HeaderCodec
from tests.conftest import broker_for
from tests.support.celery_worker import SECRET

BROKERS = ["redis", pytest.param("rabbitmq", marks=pytest.mark.rabbitmq)]
TIMEOUT = 30

signed = HeaderCodec.configure(SECRET)
ALICE = signed.encode(ByokContext("alice", frozenset({"openai"})))
MALLORY_PAYLOAD = signed.encode(ByokContext("mallory", frozenset({"openai"}))).split(".")[1]


def _payload(fields: object) -> str:
    return "1." + base64.urlsafe_b64encode(json.dumps(fields).encode()).decode().rstrip("=")


BAD_HEADERS = {
    # Alice's signature on Mallory's payload: the classic tampering.
    "tampered": ".".join([ALICE.split(".")[0], MALLORY_PAYLOAD, ALICE.split(".")[2]]),
    "signed with another secret": HeaderCodec.configure("another-secret").encode(ByokContext("mallory")),
    "malformed base64": "1.@@not-base64@@." + ALICE.split(".")[2],
    "not JSON": "1." + base64.urlsafe_b64encode(b"{{{").decode(),
    "payload not an object": _payload(["mallory"]),
    "uid missing": _payload({"p": ["openai"]}),
    "uid not a string": _payload({"u": 42, "p": []}),
    "providers not a list": _payload({"u": "mallory", "p": "openai"}),
    "oversized": "1." + "A" * 100_000,
    "non-UTF-8": b"1.\xff\xfe\xfd",
    "wrongly typed (int)": 12345,
    "wrongly typed (dict)": {"u": "mallory"},
    "foreign (a JWT)": "eyJhbGciOiJIUzI1NiJ9.eyJ1IjoibWFsbG9yeSJ9.c2lnbmF0dXJl",
    "unknown version": "2." + MALLORY_PAYLOAD,
    "non-ASCII signature": ALICE.rsplit(".", 1)[0] + ".é" + ALICE.rsplit(".", 1)[1][1:],
    "non-ASCII payload": "1.é" + MALLORY_PAYLOAD,
    "issue time too large for a float": _payload({"u": "mallory", "p": [], "t": 10**400}),
}


@pytest.fixture(params=BROKERS)
def worker(request: pytest.FixtureRequest, worker_factory: Any) -> Any:
    return worker_factory(broker_for(request, request.param), "solo")


@pytest.fixture(scope="module")
def strict_worker(redis_url: str, worker_factory: Any) -> Any:
    return worker_factory(redis_url, "solo", require_signature=True)


def _raw_header_in(log: str, header: object) -> bool:
    text = header.decode(errors="replace") if isinstance(header, bytes) else str(header)
    return len(text) > 8 and text in log


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
    assert not _raw_header_in(log, header)


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
