"""What byok-tasks adds to each Celery task on the hot path: run ``python benchmarks/bench_hot_path.py``.

Bare Celery and byok-tasks (signed headers) in one run, each in processes of its own
taking turns, publishing to a producer that sends nothing, so that no broker's round trip
drowns the figures. Per task, CPU µs of:

- publish: ``add.delay(1)`` under a BYOK context (writing and signing the header);
- worker: the tracer a worker runs each task in, on messages published that way
  (checking the header, restoring and resetting the context, the signals);

when headers repeat (one user's tasks) and when every task comes from a different user.
Targets (issue 15): at most 9 µs added per task (publish + worker) when headers repeat,
14 µs when every task is a new user; and memory flat: the worker's RSS grows less than
5 MB from 10,000 to 100,000 tasks of distinct users. Exit status 1 when a target is missed.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

from benchmarks._shared import PROVIDERS, SECRET

ROUNDS = int(os.environ.get("BYOK_BENCH_HOT_ROUNDS", "7"))
TASKS = 5_000
TARGETS_US = {"repeat": 9.0, "distinct": 14.0}
RSS_TARGET_MB = 5.0
RSS_FROM, RSS_TO = 10_000, 100_000


def measure(variant: str, memory: bool) -> dict[str, Any]:
    """In this process: the per-task CPU µs of one variant, for both scenarios (and RSS growth if asked)."""
    from celery import Celery
    from celery.app import trace

    from byok_tasks import byok_context

    app = Celery("hot-path", set_as_current=False)

    @app.task(name="add")
    def add(x: int) -> int:
        return x + 1

    if variant == "byok":
        import byok_tasks.celery

        byok_tasks.celery.install(app, secret=SECRET)
    app.finalize()
    producer = _NullProducer()
    tracer = trace.build_tracer(add.name, add, app=app, hostname="bench@localhost", eager=False)
    published = producer.headers

    def publish(tasks: int, distinct: bool, first: int = 0) -> float:
        published.clear()
        started = time.process_time()
        for number in range(first, first + tasks):
            # A fresh context for every task, as for one task per web request; bare Celery has none.
            uid = f"usr_{number:016x}" if distinct else "usr_2f9c81d4a7b3e6f0"
            with byok_context(uid, PROVIDERS) if variant == "byok" else contextlib.nullcontext():
                add.apply_async((1,), producer=producer)
        return (time.process_time() - started) / tasks * 1e6

    def run_published() -> float:
        requests = [
            {
                **headers,
                "delivery_info": {"exchange": "", "routing_key": "hot-path", "priority": 0, "redelivered": False},
                "args": [1],
                "kwargs": {},
                "hostname": "bench@localhost",
                "is_eager": False,
            }
            for headers in published
        ]
        started = time.process_time()
        for request in requests:
            tracer(request["id"], (1,), {}, request)
        return (time.process_time() - started) / len(requests) * 1e6

    result: dict[str, Any] = {}
    for scenario in ("repeat", "distinct"):
        publish(200, scenario == "distinct")  # warm up: imports, caches, the transport's queue
        run_published()
        result[scenario] = {"publish": publish(TASKS, scenario == "distinct"), "worker": run_published()}
    if memory:
        result["rss_growth_mb"] = rss_growth(publish, run_published)
    return result


class _NullProducer:
    """Takes the messages Celery publishes and sends them nowhere: the figures are Celery's and ours, not a broker's."""

    def __init__(self) -> None:
        self.headers: list[dict[str, Any]] = []

    def publish(self, body: Any, headers: dict[str, Any] | None = None, **_: Any) -> None:
        self.headers.append(dict(headers or {}))

    class connection:  # what Celery reads on a producer
        @staticmethod
        def _reraise_as_library_errors() -> contextlib.AbstractContextManager[None]:
            return contextlib.nullcontext()


def rss_growth(publish: Any, run_published: Any) -> float:
    def rss_mb() -> float:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

    done, at_from = 0, 0.0
    while done < RSS_TO:
        publish(RSS_FROM, True, first=done)  # new users in every batch: no cache hides a leak
        run_published()
        done += RSS_FROM
        if done == RSS_FROM:
            at_from = rss_mb()
    return rss_mb() - at_from


def child(variant: str, memory: bool) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, "--measure", variant, *(["--memory"] if memory else [])],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
    )
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> int:
    runs: dict[str, list[dict[str, Any]]] = {"bare": [], "byok": []}
    for turn in range(ROUNDS):
        for variant in ("bare", "byok") if turn % 2 == 0 else ("byok", "bare"):
            runs[variant].append(child(variant, memory=False))
    print(f"{'scenario':<10} {'side':<8} {'bare µs':>9} {'byok µs':>9} {'added µs':>9}")
    missed = False
    for scenario, target in TARGETS_US.items():
        total = 0.0
        for side in ("publish", "worker"):
            bare = statistics.median(run[scenario][side] for run in runs["bare"])
            byok = statistics.median(run[scenario][side] for run in runs["byok"])
            total += byok - bare
            print(f"{scenario:<10} {side:<8} {bare:9.2f} {byok:9.2f} {byok - bare:9.2f}")
        verdict = "met" if total <= target else "MISSED"
        missed |= total > target
        print(f"  -> {scenario}: byok-tasks adds {total:.1f} µs per task (target: at most {target:g} µs): {verdict}")
    growth = child("byok", memory=True)["rss_growth_mb"]
    verdict = "met" if growth < RSS_TARGET_MB else "MISSED"
    missed |= growth >= RSS_TARGET_MB
    print(
        f"  -> memory: RSS grew {growth:.1f} MB from {RSS_FROM:,} to {RSS_TO:,} tasks of distinct users "
        f"(target: under {RSS_TARGET_MB:g} MB): {verdict}"
    )
    print(f"medians of {ROUNDS} rounds of {TASKS:,} tasks per scenario, bare and byok-tasks taking turns")
    return 1 if missed else 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--measure"]:
        print(json.dumps(measure(sys.argv[2], memory="--memory" in sys.argv)))
    else:
        sys.exit(main())
