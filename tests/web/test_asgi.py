"""ByokAsgiMiddleware under a real uvicorn: HTTP requests and WebSocket connections enqueue Celery tasks on Redis.

The server (tests/apps/web_asgi.py) runs in a process of its own and publishes to a real
worker (tests/apps/web_worker.py); both seal users' keys in Redis under this module's prefix.
"""

from __future__ import annotations

import base64
import json
import secrets
import string
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from websockets.sync.client import connect

from byok_tasks.header import HeaderCodec
from byok_tasks.keys import generate_encryption_key
from byok_tasks.testing.sandbox import sandbox_key
from byok_tasks.testing.sentry_collector import SentryCollector
from tests.apps.web_server import WebServer
from tests.support.celery_worker import SECRET, Worker
from tests.support.keys import digest
from tests.support.timing import TIMEOUT
from tests.web.users import as_user


@pytest.fixture(scope="module")
def web_env(redis_url: str, key_prefix: str) -> dict[str, str]:
    return {
        "BYOK_TASKS_ENCRYPTION_KEY": generate_encryption_key(),
        "BYOK_TEST_KEY_PREFIX": key_prefix,
    }


@pytest.fixture(scope="module")
def worker(redis_url: str, worker_factory: Any, web_env: dict[str, str]) -> Worker:
    worker: Worker = worker_factory(redis_url, "threads", app_module="tests.apps.web_worker", env=web_env)
    return worker


@pytest.fixture(scope="module")
def server(
    worker: Worker, redis_url: str, web_env: dict[str, str], worker_logs: Path, sentry_collector: SentryCollector
) -> Iterator[WebServer]:
    env = {
        **web_env,
        "BROKER_URL": redis_url,
        "RESULT_BACKEND": redis_url,
        "BYOK_TEST_QUEUE": worker.queue,
        "BYOK_TASKS_SECRET": SECRET,
        "SENTRY_DSN": sentry_collector.dsn,
    }
    server = WebServer.start("asgi", "tests.apps.web_asgi:app", worker_logs / f"uvicorn-{worker.queue}.log", env)
    yield server
    server.stop()


def enqueue(server: WebServer, task: str, headers: dict[str, str], *args: str, queue: str | None = None) -> str:
    params: dict[str, Any] = {"arg": list(args)}
    if queue is not None:
        params["queue"] = queue
    response = httpx.post(f"{server.url}/enqueue/{task}", headers=headers, params=params, timeout=TIMEOUT)
    response.raise_for_status()
    return str(response.json()["id"])


def result_of(worker: Worker, task_id: str) -> Any:
    return worker.app.AsyncResult(task_id).get(timeout=TIMEOUT)


def test_task_enqueued_by_a_request_sees_the_users_uid_and_providers(server: WebServer, worker: Worker) -> None:
    headers = as_user("alice", OpenAI=sandbox_key("openai", "ok"), Anthropic=sandbox_key("anthropic", "ok"))
    assert result_of(worker, enqueue(server, "web.whoami", headers)) == ["alice", ["anthropic", "openai"]]


def test_task_enqueued_by_a_request_without_key_headers_sees_no_context(server: WebServer, worker: Worker) -> None:
    assert result_of(worker, enqueue(server, "web.whoami", as_user("alice"))) is None


def test_task_uses_the_key_the_request_brought(server: WebServer, worker: Worker) -> None:
    key = sandbox_key("openai", "ok")
    task_id = enqueue(server, "web.key_digest", as_user("alice", OpenAI=key), "openai")
    assert result_of(worker, task_id) == [["alice", ["openai"]], digest(key)]


def test_the_key_a_request_brought_is_not_readable_in_redis(server: WebServer, redis_url: str, key_prefix: str) -> None:
    key = sandbox_key("openai", "ok")
    parked = f"byok-test-parked-{uuid.uuid4().hex[:8]}"  # a queue no worker consumes: the message stays
    store = redis.Redis.from_url(redis_url)
    try:
        enqueue(server, "web.key_digest", as_user("alice", OpenAI=key), "openai", queue=parked)
        [raw] = store.lrange(parked, 0, -1)
    finally:
        store.delete(parked)
    message = json.loads(raw)
    context = HeaderCodec.configure(SECRET).decode(message["headers"]["byok"])
    assert context.keyring is not None and context.keyring.ref is not None
    sealed = store.get(key_prefix + context.keyring.ref)
    assert sealed is not None
    readable = [raw, base64.b64decode(message["body"]), sealed]
    assert not [blob for blob in readable if key.encode() in blob]


def test_application_gets_the_key_but_never_the_key_header(server: WebServer) -> None:
    key = sandbox_key("openai", "ok")
    seen = httpx.get(f"{server.url}/look", headers=as_user("alice", OpenAI=key), timeout=TIMEOUT).json()
    assert seen["openai_key"] == digest(key)
    assert "x-byok-openai" not in seen["headers"]


def test_streamed_body_keeps_the_context_to_its_end(server: WebServer) -> None:
    response = httpx.get(f"{server.url}/stream", headers=as_user("alice", OpenAI=sandbox_key("openai", "ok")))
    assert [json.loads(line) for line in response.text.splitlines()] == [["alice", ["openai"]]] * 3


def test_concurrent_requests_each_see_their_own_user(server: WebServer) -> None:
    users = [f"user-{n}" if n % 3 else None for n in range(24)]

    def stream_as(uid: str | None) -> list[Any]:
        headers = as_user(uid, OpenAI=sandbox_key("openai", "ok")) if uid else {}
        response = httpx.get(f"{server.url}/stream", headers=headers, timeout=TIMEOUT)
        return [json.loads(line) for line in response.text.splitlines()]

    with ThreadPoolExecutor(max_workers=12) as pool:
        answers = list(pool.map(stream_as, users))
    assert answers == [[[uid, ["openai"]] if uid else None] * 3 for uid in users]


def test_websocket_messages_enqueue_tasks_under_the_connections_context(server: WebServer, worker: Worker) -> None:
    headers = as_user("alice", OpenAI=sandbox_key("openai", "ok"))
    with connect(server.url.replace("http", "ws") + "/ws", additional_headers=headers) as websocket:
        task_ids = []
        for _ in range(3):
            websocket.send("whoami")
            task_ids.append(json.loads(websocket.recv(timeout=TIMEOUT)))
    assert [result_of(worker, task_id) for task_id in task_ids] == [["alice", ["openai"]]] * 3


def test_websocket_without_key_headers_runs_without_context(server: WebServer) -> None:
    with connect(server.url.replace("http", "ws") + "/ws", additional_headers=as_user("alice")) as websocket:
        websocket.send("seen")
        assert json.loads(websocket.recv(timeout=TIMEOUT)) is None


def test_anonymous_request_with_a_key_runs_without_context_and_is_logged_once(server: WebServer) -> None:
    keys = [sandbox_key("openai", "ok") for _ in range(2)]
    answers = [httpx.get(f"{server.url}/look", headers={"X-BYOK-OpenAI": key}).json() for key in keys]
    assert [answer["context"] for answer in answers] == [None, None]
    log = server.log()
    assert log.count("the uid resolver found no user") == 1
    assert not [key for key in keys if key in log]


def test_failed_request_sends_no_key_to_sentry(server: WebServer, sentry_collector: SentryCollector) -> None:
    # A Mistral key has no recognisable shape: only keeping it out of the event protects it.
    key = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(32))
    sentry_collector.clear()
    response = httpx.get(f"{server.url}/fail", headers=as_user("alice", Mistral=key), timeout=TIMEOUT)
    assert response.status_code == 500
    [event] = sentry_collector.wait_for(1, timeout=TIMEOUT)
    assert event["exception"]["values"][-1]["value"] == "the handler failed while holding a mistral key"
    assert not [body for body in sentry_collector.raw if key.encode() in body]
