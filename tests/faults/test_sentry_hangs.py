"""Sentry accepting connections and never answering, under a prefork worker.

Tasks must run as if Sentry were healthy (sentry-sdk sends from a thread of its own),
and a warm shutdown must end within sentry-sdk's ``shutdown_timeout``: the flush at exit
gives up then, instead of waiting on a Sentry that never replies.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery import group

from byok_tasks import ByokKeyUnavailable, byok_context
from byok_tasks.testing.sentry_collector import SentryCollector
from tests.support.celery_worker import Worker, start_worker
from tests.support.silent_server import SilentServer
from tests.support.timing import TIMEOUT

SHUTDOWN_TIMEOUT = 2.0
# What a loaded machine adds to a warm shutdown from one run to the next.
MARGIN = 2.0
TASKS = 20


@pytest.fixture
def silent_sentry() -> Iterator[SilentServer]:
    with SilentServer() as server:
        yield server


def worker_reporting_to(dsn: str, redis_url: str, log_dir: Path) -> Worker:
    env = {"SENTRY_DSN": dsn, "BYOK_TEST_SHUTDOWN_TIMEOUT": str(SHUTDOWN_TIMEOUT)}
    return start_worker(redis_url, redis_url, "prefork", log_dir, app_module="tests.faults.app", env=env)


@pytest.fixture
def worker(silent_sentry: SilentServer, redis_url: str, worker_logs: Path) -> Iterator[Worker]:
    worker = worker_reporting_to(f"http://byok-public-key@127.0.0.1:{silent_sentry.port}/1", redis_url, worker_logs)
    yield worker
    worker.stop()


@pytest.fixture
def healthy_worker(sentry_collector: SentryCollector, redis_url: str, worker_logs: Path) -> Iterator[Worker]:
    worker = worker_reporting_to(sentry_collector.dsn, redis_url, worker_logs)
    yield worker
    worker.stop()


def run_failing_tasks(worker: Worker) -> None:
    """Tasks whose users' keys cannot be found: each failure is an event for the worker's Sentry."""
    results = []
    for n in range(TASKS):
        with byok_context(f"user-{uuid.uuid4().hex[:6]}-{n}", ["openai"]):
            results.append(worker.app.send_task("faults.use_key", ("byok-test-faults-sentry", uuid.uuid4().hex)))
    for result in results:
        with pytest.raises(ByokKeyUnavailable):
            result.get(timeout=TIMEOUT)


def wait_until_idle(worker: Worker) -> None:
    """Until the worker has taken in the outcome of every task its pool ran.

    A task's result reaches the backend before the pool process tells the worker it is
    done. A warm shutdown that comes in between makes billiard's pool process wait up to
    30 s for the worker to read that last message (``_ensure_messages_consumed``), with
    Sentry healthy or not: a race of Celery's own, which this test is not about.
    """
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        replies = worker.app.control.inspect(timeout=1).active() or {}
        ours = [active for name, active in replies.items() if name.startswith(worker.queue)]
        if ours and not any(ours):
            return
        time.sleep(0.1)
    pytest.fail(f"the worker still had tasks in hand {TIMEOUT} s after their results came")


def warm_shutdown_seconds(worker: Worker) -> float:
    wait_until_idle(worker)
    started = time.monotonic()
    os.kill(worker.proc.pid, signal.SIGTERM)  # Celery's warm shutdown
    try:
        worker.proc.wait(TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the worker was still shutting down {TIMEOUT} s after SIGTERM")
    assert worker.proc.returncode == 0
    return time.monotonic() - started


def test_tasks_run_unaffected_while_sentry_never_answers(worker: Worker, silent_sentry: SilentServer) -> None:
    started = time.monotonic()
    run_failing_tasks(worker)
    # Outside any BYOK context: the platform's key, rightly, and no failure.
    healthy = group(worker.app.signature("faults.use_key", ("byok-test-faults-sentry", str(n))) for n in range(TASKS))
    assert healthy.apply_async().get(timeout=TIMEOUT) == ["done"] * TASKS
    assert silent_sentry.accepted >= 1  # the events went to the hanging Sentry
    assert time.monotonic() - started < 10


def test_warm_shutdown_with_sentry_hanging_takes_at_most_sentrys_shutdown_timeout_longer(
    worker: Worker, healthy_worker: Worker
) -> None:
    run_failing_tasks(healthy_worker)
    healthy = warm_shutdown_seconds(healthy_worker)
    run_failing_tasks(worker)
    hanging = warm_shutdown_seconds(worker)
    print(f"\nwarm shutdown: {healthy:.2f} s with Sentry healthy, {hanging:.2f} s with Sentry hanging")
    assert hanging < healthy + SHUTDOWN_TIMEOUT + MARGIN
