"""Key health's cost, in process, on the real Redis (``BYOK_BENCH_REDIS_URL``): ``python benchmarks/bench_health.py``.

Success path: ``current_key()`` for a healthy key, without and with key health, for a
resolver (a cached status read every ``cache_ttl``) and sealed keys (the statuses come in
the sealed keys' own round trip). Failure path: one recorded failure (one Lua round trip).
"""

from __future__ import annotations

import os
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from byok_tasks import KeyHealth, byok_context, current_key, health, keys, running
from byok_tasks.failure import LLMFailure
from byok_tasks.keys import SealedKeyStore, generate_encryption_key

REDIS_URL = os.environ.get("BYOK_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
N = 2000
PREFIX = f"byok-bench-health-{uuid.uuid4().hex[:8]}:"
KEY = "sk-proj-ok-bench-key-0000000000000000000000"


def per_call_us(run: object, rounds: int = 5) -> float:
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(N):
            run()  # type: ignore[operator]
        samples.append((time.perf_counter() - started) / N * 1e6)
    return statistics.median(samples)


def resolver_task() -> None:
    token = running.enter_task("bench")
    with byok_context("bench-user", providers=["openai"]):
        current_key("openai")
    running.exit_task(token)


def main() -> int:
    store = SealedKeyStore(REDIS_URL, encryption_key=generate_encryption_key(), prefix=PREFIX + "keys:")
    keys.configure(store=store, resolver=lambda uid, provider: KEY, resolver_ttl=0)
    with byok_context("bench-user", keys={"openai": KEY}) as context:
        assert context.keyring is not None
        ref = context.keyring.seal("bench-user", store)

    def sealed_task() -> None:
        token = running.enter_task("bench")
        ring = keys.Keyring(ref=ref)
        with byok_context("bench-user", providers=["openai"]) as base:
            object.__setattr__(base, "keyring", ring)
            current_key("openai")
        running.exit_task(token)

    rows = {"resolver": [per_call_us(resolver_task)], "sealed": [per_call_us(sealed_task)]}
    health.configure(KeyHealth(REDIS_URL, secret="bench-secret-of-32-bytes-or-more!!", prefix=PREFIX, timeout=1.0))
    rows["resolver"].append(per_call_us(resolver_task))
    rows["sealed"].append(per_call_us(sealed_task))
    print(f"success path, µs per current_key() in a task (median of 5 rounds of {N})")
    print(f"{'keys':10} {'without':>10} {'with health':>12} {'ratio':>7}")
    for name, (without, with_health) in rows.items():
        print(f"{name:10} {without:10.1f} {with_health:12.1f} {with_health / without:7.2f}")
    failure = LLMFailure(
        source="byok", provider="openai", reason="invalid_key", status=401, code=None, retry_after=None,
        retryable=False, model="m", feature="f", operation="chat", uid="bench-failing", error_type="E", message="m",
    )  # fmt: skip
    exc = RuntimeError("bench")
    print(f"failure path: {per_call_us(lambda: health._on_failure(failure, exc), 3):.1f} µs per recorded failure")
    client = health.configured()._store.client  # type: ignore[union-attr]
    for name in client.scan_iter(match=f"{PREFIX}*", count=1000):
        client.delete(name)
    health.configure(None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
