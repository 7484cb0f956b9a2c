"""Finding the Redis and RabbitMQ the tests run against.

On a developer machine without Redis, Redis-backed tests fall back to the embedded
server and RabbitMQ tests skip with a printed reason. CI sets BYOK_TASKS_REQUIRE_SERVICES=1,
which turns any missing service into a failure instead.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from urllib.parse import urlsplit

REQUIRE_ENV = "BYOK_TASKS_REQUIRE_SERVICES"
REDIS_URL = os.environ.get("BYOK_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
RABBITMQ_URL = os.environ.get("BYOK_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672//")


def services_required() -> bool:
    return os.environ.get(REQUIRE_ENV, "") not in ("", "0")


def redis_answers(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def rabbitmq_answers(url: str) -> bool:
    from kombu import Connection

    try:
        with Connection(url, connect_timeout=2) as conn:
            conn.ensure_connection(max_retries=1)
        return True
    except Exception:
        return False


class EmbeddedRedisProcess:
    """The embedded server in a process of its own, so worker processes can reach it too."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "byok_tasks.testing.embedded_redis", "--port", "0"],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().strip()
        deadline = time.monotonic() + 10
        while not redis_answers(self.url):
            if time.monotonic() > deadline:
                self.close()
                raise RuntimeError("the embedded Redis server did not start")
            time.sleep(0.05)

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
