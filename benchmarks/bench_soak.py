"""Memory soak: 100,000 signed tasks of distinct users, worker RSS from the 10,000th to the last.

``python benchmarks/bench_soak.py [--tasks N]`` runs four soaks, on a redis-server of its
own (broker and key store): the solo and the prefork (-c 2) pool, each with a context only
(the task reads it and runs on the platform's key) and with the user's key sealed for
every task (sealed at publish, fetched and decrypted by the worker's ``current_key``).
A fresh user every task, so nothing byok-tasks keeps per user or per header can hide in a
cache hit. The worker's resident memory (every process of it) is read once a tenth of
the tasks have run, and again after the last; the growth between the two is printed,
and should stay under 5 MB.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

import redis
from celery import Celery

import byok_tasks.celery
from benchmarks._procs import ChildFailed, Worker, _process_group, pop, tail
from benchmarks.apps._common import create_app, redis_client
from byok_tasks import byok_context, current_context, current_key
from byok_tasks.keys import ENCRYPTION_KEY_ENV, SealedKeyStore, generate_encryption_key

SECRET = "soak-secret-not-a-key"
SECRET_ENV = "BYOK_SOAK_SECRET"  # not BYOK_TASKS_SECRET: benchmark children drop that one
COUNTER_ENV = "BYOK_SOAK_COUNTER"
KEYS_ENV = "BYOK_SOAK_KEYS"
USER_KEY = "sk-proj-soak-" + "c" * 48
LIMIT_MB = 5.0
# Published ahead of the worker at most: the soak measures the worker, not a growing queue.
AHEAD = 5_000

# The worker's app, configured from its environment; the publishing side is built in soak().
app = create_app("byok_bench_soak")
if os.environ.get(SECRET_ENV):
    store = SealedKeyStore(os.environ["BYOK_BENCH_BROKER"], prefix="soak:keys:", ttl=600)
    byok_tasks.celery.install(app, secret=os.environ[SECRET_ENV], key_store=store)


@app.task(name="soak.run", shared=False)
def run() -> None:
    context = current_context()
    assert context is not None, "a soak task ran without its context"
    if os.environ.get(KEYS_ENV):
        assert current_key("openai") == USER_KEY
    redis_client().incr(os.environ[COUNTER_ENV])


def rss_kb(pgid: int) -> int:
    """Resident memory of every process in the worker's group, in kB."""
    total = 0
    for pid in _process_group(pgid):
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def soak(broker_url: str, pool: str, sealed: bool, tasks: int, log_dir: Path) -> tuple[float, float, float]:
    """RSS after a tenth of ``tasks`` and after all of them (MB), and tasks per second."""
    queue, counter, ready = (f"soak-{uuid.uuid4().hex[:8]}-{what}" for what in ("queue", "done", "ready"))
    encryption_key = generate_encryption_key()
    env = {
        "BYOK_BENCH_BROKER": broker_url,
        "BYOK_BENCH_QUEUE": queue,
        "BYOK_BENCH_READY_KEY": ready,
        SECRET_ENV: SECRET,
        ENCRYPTION_KEY_ENV: encryption_key,
        COUNTER_ENV: counter,
        KEYS_ENV: "1" if sealed else "",
    }
    publisher = Celery("byok_bench_soak_publisher", broker=broker_url, set_as_current=False)
    publisher.conf.task_ignore_result = True
    store = SealedKeyStore(broker_url, encryption_key=encryption_key, prefix="soak:keys:", ttl=600)
    byok_tasks.celery.install(publisher, secret=SECRET, key_store=store)
    client = redis.Redis.from_url(broker_url)
    worker = Worker("benchmarks.bench_soak", pool, 2 if pool == "prefork" else 1, queue, env, log_dir / f"{queue}.log")
    try:
        pop(client, ready, worker, 60)
        first_mark, rss_first = max(1, tasks // 10), 0.0
        started = time.monotonic()
        for n in range(tasks):
            keys = {"keys": {"openai": USER_KEY}} if sealed else {"providers": ["openai"]}
            with byok_context(f"usr_{n:08d}_{uuid.uuid4().hex[:8]}", **keys):  # type: ignore[arg-type]
                publisher.send_task("soak.run", queue=queue)
            if n % 1000 == 999:
                wait_until(client, counter, n + 1 - AHEAD, worker)
            if not rss_first and int(client.get(counter) or 0) >= first_mark:
                rss_first = rss_kb(worker.proc.pid) / 1024
        wait_until(client, counter, tasks, worker)
        elapsed = time.monotonic() - started
        rss_first = rss_first or rss_kb(worker.proc.pid) / 1024
        return rss_first, rss_kb(worker.proc.pid) / 1024, tasks / elapsed
    finally:
        worker.stop()
        publisher.close()
        client.delete(counter, ready, queue)


def wait_until(client: redis.Redis, counter: str, count: int, worker: Worker) -> None:
    deadline = time.monotonic() + 120
    while (done := int(client.get(counter) or 0)) < count:
        if not worker.alive() or time.monotonic() > deadline:
            raise ChildFailed(f"the worker stopped at {done} tasks:\n{tail(worker.log_path)}")
        time.sleep(0.05)


def main() -> None:
    from tests.support.redis_server import RedisServer

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=100_000, help="tasks per soak (default 100,000)")
    args = parser.parse_args()
    print(f"{args.tasks:,} signed tasks of distinct users per soak; RSS of the whole worker, MB")
    first_column = "at " + format(args.tasks // 10, ",")
    print(f"{'pool':8} {'keys':7} {first_column:>12} {'at the end':>11} {'growth':>7} {'tasks/s':>8}")
    worst = 0.0
    with tempfile.TemporaryDirectory() as directory, RedisServer(Path(directory)) as server:
        for pool in ("solo", "prefork"):
            for sealed in (False, True):
                first, last, rate = soak(server.url, pool, sealed, args.tasks, Path(directory))
                worst = max(worst, last - first)
                label = "sealed" if sealed else "none"
                print(f"{pool:8} {label:7} {first:12.1f} {last:11.1f} {last - first:+7.2f} {rate:8.0f}", flush=True)
    print(f"largest growth {worst:+.2f} MB: {'under' if worst < LIMIT_MB else 'OVER'} the {LIMIT_MB:g} MB limit")
    sys.exit(0 if worst < LIMIT_MB else 1)


if __name__ == "__main__":
    main()
