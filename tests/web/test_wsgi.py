"""ByokWsgiMiddleware under werkzeug's threaded server: a Flask app's requests enqueue Celery tasks on Redis."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from byok_tasks.keys import generate_encryption_key
from byok_tasks.testing.sandbox import sandbox_key
from tests.apps.web_server import WebServer
from tests.support.celery_worker import SECRET, Worker
from tests.support.keys import digest
from tests.support.timing import TIMEOUT
from tests.web.users import as_user


@pytest.fixture(scope="module")
def web_env(key_prefix: str) -> dict[str, str]:
    return {"BYOK_TASKS_ENCRYPTION_KEY": generate_encryption_key(), "BYOK_TEST_KEY_PREFIX": key_prefix}


@pytest.fixture(scope="module")
def worker(redis_url: str, worker_factory: Any, web_env: dict[str, str]) -> Worker:
    worker: Worker = worker_factory(redis_url, "threads", app_module="tests.apps.web_worker", env=web_env)
    return worker


@pytest.fixture(scope="module")
def server(worker: Worker, redis_url: str, web_env: dict[str, str], worker_logs: Path) -> Iterator[WebServer]:
    env = {
        **web_env,
        "BROKER_URL": redis_url,
        "RESULT_BACKEND": redis_url,
        "BYOK_TEST_QUEUE": worker.queue,
        "BYOK_TASKS_SECRET": SECRET,
    }
    server = WebServer.start("wsgi", "tests.apps.web_flask:app", worker_logs / f"werkzeug-{worker.queue}.log", env)
    yield server
    server.stop()


def enqueue(server: WebServer, worker: Worker, task: str, headers: dict[str, str], *args: str) -> Any:
    response = httpx.post(f"{server.url}/enqueue/{task}", headers=headers, params={"arg": list(args)}, timeout=TIMEOUT)
    response.raise_for_status()
    return worker.app.AsyncResult(response.json()["id"]).get(timeout=TIMEOUT)


def test_task_enqueued_by_a_request_sees_the_users_uid_and_providers(server: WebServer, worker: Worker) -> None:
    headers = as_user("alice", OpenAI=sandbox_key("openai", "ok"), Anthropic=sandbox_key("anthropic", "ok"))
    assert enqueue(server, worker, "web.whoami", headers) == ["alice", ["anthropic", "openai"]]


def test_task_enqueued_by_a_request_without_key_headers_sees_no_context(server: WebServer, worker: Worker) -> None:
    assert enqueue(server, worker, "web.whoami", as_user("alice")) is None


def test_task_uses_the_key_the_request_brought(server: WebServer, worker: Worker) -> None:
    key = sandbox_key("openai", "ok")
    answer = enqueue(server, worker, "web.key_digest", as_user("alice", OpenAI=key), "openai")
    assert answer == [["alice", ["openai"]], digest(key)]


def test_application_gets_the_key_but_never_the_key_header(server: WebServer) -> None:
    key = sandbox_key("openai", "ok")
    seen = httpx.get(f"{server.url}/look", headers=as_user("alice", OpenAI=key), timeout=TIMEOUT).json()
    assert seen["openai_key"] == digest(key)
    assert "x-byok-openai" not in seen["headers"]


def test_streamed_body_keeps_the_context_to_its_end(server: WebServer) -> None:
    response = httpx.get(f"{server.url}/stream", headers=as_user("alice", OpenAI=sandbox_key("openai", "ok")))
    assert [json.loads(line) for line in response.text.splitlines()] == [["alice", ["openai"]]] * 3
