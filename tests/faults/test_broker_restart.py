"""The broker killed and restarted mid-run under a prefork worker: every task that runs sees its own context.

The broker is a redis-server of the test's own with append-only persistence; the results
go to the shared Redis, which stays up. Tasks Celery itself loses in the crash (those it
held unacknowledged, and writes the append-only file had not flushed) are reported, not
failed: losing them is the broker's and Celery's doing, and no context is involved.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from byok_tasks import byok_context
from tests.support.celery_worker import Worker, start_worker
from tests.support.redis_keys import new_namespace
from tests.support.redis_server import RedisServer

BEFORE, AFTER = 150, 150
# How long the run may take to settle after the restart.
SETTLE = 30.0


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[RedisServer]:
    with RedisServer(tmp_path, args=["--appendonly", "yes"]) as server:
        yield server


@pytest.fixture
def worker(broker: RedisServer, redis_url: str, worker_logs: Path) -> Iterator[Worker]:
    worker = start_worker(broker.url, redis_url, "prefork", worker_logs, app_module="tests.faults.app")
    yield worker
    worker.stop()


def uid_of(seq: int) -> str:
    return f"user-{seq:04d}"


def runs(shared: redis.Redis, namespace: str) -> dict[tuple[int, str], int]:
    """How many times each (task, uid it saw) ran."""
    counted: dict[tuple[int, str], int] = {}
    for field, times in shared.hgetall(f"{namespace}:runs").items():
        seq, _, uid = field.decode().partition(":")
        counted[int(seq), uid] = int(times)
    return counted


def send(worker: Worker, namespace: str, seqs: range) -> None:
    for seq in seqs:
        with byok_context(uid_of(seq), ["openai"]):
            worker.app.send_task("faults.record_context", (namespace, seq), ignore_result=True)


def wait_for_runs(shared: redis.Redis, namespace: str, at_least: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while len(runs(shared, namespace)) < at_least and time.monotonic() < deadline:
        time.sleep(0.02)


def gave_up(worker: Worker) -> bool:
    """The worker died, or is going down: kombu 5.7's Redis transport sometimes dies of its own
    reconnection ("Unrecoverable error: AttributeError: 'NoneType' object has no attribute
    'hostname'", restoring unacked messages), and a prefork worker can then take more than
    ``SETTLE`` to exit. A supervisor would restart it."""
    return not worker.alive() or "Unrecoverable error" in worker.log()


def settled(shared: redis.Redis, namespace: str, worker: Worker) -> dict[tuple[int, str], int]:
    """The runs, once every task sent after the restart has run and nothing new ran for 3 s (``SETTLE`` at most).

    Those tasks reached a broker that was up: only they are sure to come. The worker may
    take several of its reconnection attempts (2 s, then 4 s, ...) to find the broker again.
    """
    deadline, last, quiet_since = time.monotonic() + SETTLE, -1, time.monotonic()
    after = set(range(BEFORE, BEFORE + AFTER))
    while time.monotonic() < deadline and not gave_up(worker):
        seen = runs(shared, namespace)
        if len(seen) != last:
            last, quiet_since = len(seen), time.monotonic()
        elif after <= {seq for seq, _ in seen} and time.monotonic() - quiet_since > 3:
            return seen
        time.sleep(0.1)
    return runs(shared, namespace)


def test_every_task_that_runs_across_a_broker_restart_sees_its_own_context(
    broker: RedisServer, worker: Worker, redis_url: str
) -> None:
    shared, namespace = redis.Redis.from_url(redis_url), new_namespace("faults-broker")
    try:
        send(worker, namespace, range(BEFORE))
        wait_for_runs(shared, namespace, BEFORE // 4, timeout=20)  # mid-run: some done, more waiting
        broker.kill()
        time.sleep(1)
        broker.start()
        send(worker, namespace, range(BEFORE, BEFORE + AFTER))
        seen = settled(shared, namespace, worker)
    finally:
        shared.delete(f"{namespace}:runs")

    mismatched = sorted((seq, uid) for seq, uid in seen if uid != uid_of(seq))
    ran = {seq for seq, _ in seen}
    lost = sorted(set(range(BEFORE + AFTER)) - ran)
    twice = sorted(seq for (seq, _), n in seen.items() if n > 1)
    # When the worker gave up (see gave_up), what it ran until then is still checked;
    # what it never ran is Celery's loss.
    died = ", the worker died reconnecting (see its log)" if gave_up(worker) else ""
    print(
        f"\nbroker restart{died}: sent {BEFORE + AFTER} ({BEFORE} before the kill, {AFTER} after the restart), "
        f"ran {len(ran)}, lost by Celery {len(lost)} {lost[:20]}, ran twice {len(twice)}, "
        f"context mismatches {len(mismatched)}"
    )
    assert mismatched == []
    assert gave_up(worker) or ran >= set(range(BEFORE, BEFORE + AFTER)), "the worker lost tasks sent after the restart"
