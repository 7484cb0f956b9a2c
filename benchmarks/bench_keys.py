"""What each way of handing a user's key to a task costs per task: run ``python benchmarks/bench_keys.py``.

Measured against the real Redis (``BYOK_BENCH_REDIS_URL``, default 127.0.0.1:6379/0),
the figure is the median per task over several rounds:

- **publish**: a real Celery ``send_task`` to the Redis broker, one BYOK context per task as
  in a web request, so sealed keys are sealed (AES-256-GCM, one Redis SET) for every task;
- **worker**: what byok-tasks does for a task in the worker: decode and verify its header,
  restore its context, and answer the task's first ``current_key("openai")``. The
  resolver reads the key from a Redis hash, like an application's own key store; cold
  means a cache miss on every task, cached a hit. Sealed keys cost one Redis GET and
  AES-GCM decryption.

Ratios are against the no-keys row of the same side: a context without keys, whose task
runs on the platform's key. Everything this creates in Redis is removed at the end.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

import redis
from celery import Celery

import byok_tasks.celery
from byok_tasks import byok_context, current_key
from byok_tasks import keys as byok_keys
from byok_tasks.context import attach, detach
from byok_tasks.header import HeaderCodec
from byok_tasks.keys import SealedKeyStore, generate_encryption_key

REDIS_URL = os.environ.get("BYOK_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
SECRET = "bench-secret"
TASKS = 500
ROUNDS = 7
NAMESPACE = f"byok-bench-keys-{uuid.uuid4().hex[:8]}"
USER_KEY = "sk-proj-ok-" + "b" * 48
NO_KEYS_PUBLISH = "no keys (context only; also the resolver path)"
NO_KEYS_WORKER = "no keys (platform key: current_key is None)"


def medians_us(rows: dict[str, Callable[[], None]]) -> dict[str, float]:
    """For each row, the median over ROUNDS of the time one round takes, per task.

    Rows take turns within each round, so that a machine busy with something else for a
    while slows every row alike rather than whichever was running.
    """
    times: dict[str, list[float]] = {name: [] for name in rows}
    for round_number in range(ROUNDS + 1):
        for name, per_round in rows.items():
            start = time.perf_counter()
            per_round()
            if round_number:  # round 0 warms connections and caches that a real process has warm
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(taken) / TASKS * 1e6 for name, taken in times.items()}


def publish_costs(client: redis.Redis, store: SealedKeyStore) -> dict[str, float]:
    queue = f"{NAMESPACE}-queue"
    app = Celery("bench", broker=REDIS_URL, set_as_current=False)
    app.conf.update(task_default_queue=queue, broker_connection_retry_on_startup=True)
    byok_tasks.celery.install(app, secret=SECRET, key_store=store)

    def publishing(keys: dict[str, str] | None, context: bool = True) -> Callable[[], None]:
        def per_round() -> None:
            for _ in range(TASKS):
                if not context:
                    app.send_task("bench.task")
                    continue
                with byok_context("alice", ["openai"], keys=keys):
                    app.send_task("bench.task")
            client.delete(queue)  # nobody consumes it

        return per_round

    try:
        return medians_us(
            {
                "plain Celery, no BYOK context": publishing(None, context=False),
                NO_KEYS_PUBLISH: publishing(None),
                "sealed keys (seal + SET per task)": publishing({"openai": USER_KEY}),
            }
        )
    finally:
        app.close()


def worker_costs(client: redis.Redis, store: SealedKeyStore) -> dict[str, float]:
    codec = HeaderCodec.configure(SECRET)
    with byok_context("alice", ["openai"]) as context:
        plain = codec.encode(context)
    with byok_context("alice", keys={"openai": USER_KEY}) as context:
        assert context.keyring is not None
        context.keyring.seal("alice", store)
        sealed = codec.encode(context)
    vault = f"{NAMESPACE}:vault"
    client.hset(vault, "alice:openai", USER_KEY)

    def resolve(uid: str, provider: str) -> str | None:
        key = client.hget(vault, f"{uid}:{provider}")
        return key.decode() if key is not None else None

    def running(header: str, provider: str, resolver_ttl: float | None = None) -> Callable[[], None]:
        def per_round() -> None:
            if resolver_ttl is not None:  # a fresh cache: its first task misses, like a new worker's
                byok_keys.configure(resolver=resolve, resolver_ttl=resolver_ttl)
            for _ in range(TASKS):
                token = attach(codec.decode(header))
                try:
                    current_key(provider)
                finally:
                    detach(token)

        return per_round

    return medians_us(
        {
            NO_KEYS_WORKER: running(plain, "anthropic"),
            "resolver, cold (HGET per task)": running(plain, "openai", resolver_ttl=0),
            "resolver, cached": running(plain, "openai", resolver_ttl=3600),
            "sealed keys (GET + decrypt per task)": running(sealed, "openai"),
        }
    )


def print_table(title: str, costs: dict[str, float], baseline: str) -> None:
    width = max(len(name) for name in costs)
    print(f"{title}\n")
    for name, micros in costs.items():
        print(f"  {name:<{width}}  {micros:8.1f} µs  {micros / costs[baseline]:5.2f}x")
    print()


def main() -> int:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.ConnectionError:
        print(f"Redis does not answer at {REDIS_URL}: set BYOK_BENCH_REDIS_URL", file=sys.stderr)
        return 1
    store = SealedKeyStore(REDIS_URL, encryption_key=generate_encryption_key(), prefix=f"{NAMESPACE}:sealed:")
    byok_keys.configure(store=store)
    print(f"Per task, median of {ROUNDS} rounds of {TASKS} tasks, Redis at {REDIS_URL}\n")
    try:
        publish = publish_costs(client, store)
        print_table("Publish (Celery send_task to the Redis broker)", publish, NO_KEYS_PUBLISH)
        worker = worker_costs(client, store)
        print_table("Worker (decode header, restore context, first current_key)", worker, NO_KEYS_WORKER)
    finally:
        for pattern in (f"{NAMESPACE}*", f"_kombu.binding*.{NAMESPACE}*"):  # the queue's bindings too
            for name in client.scan_iter(match=pattern):
                client.delete(name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
