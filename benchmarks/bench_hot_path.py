"""What byok-tasks adds to each Celery task on the hot path: run ``python benchmarks/bench_hot_path.py``.

Bare Celery and byok-tasks (signed headers) in one process, publishing to a producer that
sends nothing, so that no broker's round trip drowns the figures. Per task, µs of:

- publish: ``add.delay(1)`` under a fresh BYOK context (entering it, writing and signing
  the header); bare Celery publishes the same task with no context, through the sender
  Celery built (byok-tasks' wrapper of it taken off);
- worker: the function a worker runs each task in, on that message: byok-tasks' (checking
  the header, restoring and resetting the context) against the one Celery's own tracer
  builder makes;

when headers repeat (one user's tasks) and when every task comes from a different user.

Bare and byok-tasks take turns task by task, each task timed alone, and the figure is the
median of the differences between tasks of one turn: this machine's speed moves by half within seconds (bare
Celery's publish, 130 to 220 µs in one minute), and only tasks timed side by side see the
same machine. For the same reason the targets of issue 15 (at most 9 µs added per task,
publish + worker, when headers repeat; 14 µs when every task is a new user) are checked
in the issue's own yardstick: its figures were taken where one Celery signal dispatch to
one receiver cost 2.4 µs, and that dispatch is timed here in the same run, the same way,
to scale them. Memory: the worker's RSS grows less than 5 MB from 10,000 to 100,000 tasks
of distinct users, in a process of its own. Exit status 1 when a target is missed.
"""

from __future__ import annotations

import contextlib
import json
import operator
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

from benchmarks._shared import PROVIDERS, SECRET

TASKS = int(os.environ.get("BYOK_BENCH_HOT_TASKS", "20000"))
TARGETS_US = {"repeat": 9.0, "distinct": 14.0}
# One Celery signal dispatch to one receiver, where issue 15's targets were measured.
YARDSTICK_AT_TARGETS_US = 2.4
RSS_TARGET_MB = 5.0
RSS_FROM, RSS_TO = 10_000, 100_000


def measure() -> dict[str, Any]:
    """In this process: per scenario and side, bare Celery's median µs per task and what byok-tasks adds to it."""
    from celery.app import trace
    from celery.utils.dispatch import Signal

    from byok_tasks import byok_context

    app, add, producer, tracer = _installed_app()
    amqp = app.amqp
    # The yardstick: bare Celery's publish plus one dispatch of a signal that has one
    # receiver, made where Celery makes its own (in the sender, with its arguments).
    yardstick = Signal(name="yardstick")
    yardstick.connect(lambda **_: None, weak=False)
    bare_sender = amqp.send_task_message.__wrapped__

    def dispatching(*args: Any, **options: Any) -> Any:
        yardstick.send(sender="add", body=None, exchange="", routing_key="", headers={}, properties={})
        return bare_sender(*args, **options)

    senders = {"bare": bare_sender, "byok": amqp.send_task_message, "yardstick": dispatching}
    tracers = {
        "bare": trace.build_tracer.__wrapped__(add.name, add, app=app, hostname="bench@localhost", eager=False),
        "byok": tracer,
    }
    tracers["yardstick"] = tracers["bare"]
    users = iter(range(10**9))
    clock = time.perf_counter_ns

    def one_task(arm: str, distinct: bool) -> tuple[int, int]:
        amqp.send_task_message = senders[arm]
        # A fresh context for every task, as for one task per web request; bare Celery has none.
        uid = f"usr_{next(users):016x}" if distinct else "usr_2f9c81d4a7b3e6f0"
        started = clock()
        with byok_context(uid, PROVIDERS) if arm == "byok" else contextlib.nullcontext():
            add.apply_async((1,), producer=producer)
        published = clock()
        request = _request(producer.headers.pop())
        run = tracers[arm]
        ran = clock()
        run(request["id"], (1,), {}, request)
        return published - started, clock() - ran

    result: dict[str, Any] = {}
    for scenario in ("repeat", "distinct"):
        times: dict[str, tuple[list[int], list[int]]] = {arm: ([], []) for arm in senders}
        arms = list(senders)
        for task in range(TASKS + 1_000):  # the first thousand warm up imports and caches
            arms.append(arms.pop(0))  # each arm goes first in turn
            for arm in arms:
                publish, worker = one_task(arm, scenario == "distinct")
                if task >= 1_000:
                    times[arm][0].append(publish)
                    times[arm][1].append(worker)

        result[scenario] = {
            side: {"bare": statistics.median(times["bare"][index]) / 1e3, "added": _added(times, "byok", index)}
            for index, side in enumerate(("publish", "worker"))
        }
        result[scenario]["yardstick"] = _added(times, "yardstick", 0)
    amqp.send_task_message = senders["byok"]
    return result


def _added(times: dict[str, tuple[list[int], list[int]]], arm: str, side: int) -> float:
    """The median µs ``arm`` took over bare Celery, task by task: the tasks of one turn ran on the same machine."""
    return statistics.median(map(operator.sub, times[arm][side], times["bare"][side])) / 1e3


def measure_memory() -> float:
    """In this process, byok-tasks installed: RSS growth in MB from ``RSS_FROM`` to ``RSS_TO`` tasks of new users."""
    from byok_tasks import byok_context

    _, add, producer, tracer = _installed_app()

    def rss_mb() -> float:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

    done, at_from = 0, 0.0
    while done < RSS_TO:
        producer.headers.clear()
        for number in range(done, done + RSS_FROM):  # new users in every batch: no cache hides a leak
            with byok_context(f"usr_{number:016x}", PROVIDERS):
                add.apply_async((1,), producer=producer)
        for request in map(_request, producer.headers):
            tracer(request["id"], (1,), {}, request)
        done += RSS_FROM
        if done == RSS_FROM:
            at_from = rss_mb()
    return rss_mb() - at_from


def _installed_app() -> tuple[Any, Any, _NullProducer, Any]:
    """A Celery app with byok-tasks installed (signed headers), its task, a producer that sends nothing, the tracer."""
    from celery import Celery
    from celery.app import trace

    import byok_tasks.celery

    app = Celery("hot-path", set_as_current=False)

    @app.task(name="add")
    def add(x: int) -> int:
        return x + 1

    byok_tasks.celery.install(app, secret=SECRET)
    app.finalize()
    tracer = trace.build_tracer(add.name, add, app=app, hostname="bench@localhost", eager=False)
    return app, add, _NullProducer(), tracer


def _request(headers: dict[str, Any]) -> dict[str, Any]:
    """The request a worker builds from a published message's headers."""
    delivery = {"exchange": "", "routing_key": "hot-path", "priority": 0, "redelivered": False}
    return {
        **headers,
        "delivery_info": delivery,
        "args": [1],
        "kwargs": {},
        "hostname": "bench@localhost",
        "is_eager": False,
    }


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


def child(what: str) -> Any:
    done = subprocess.run(
        [sys.executable, __file__, what],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    figures = child("--measure")
    print(f"{'scenario':<10} {'side':<8} {'bare µs':>9} {'added µs':>9} {'added %':>8}")
    missed = False
    for scenario, target in TARGETS_US.items():
        # How much slower than where the targets were set this machine was, while it ran the scenario.
        yardstick = figures[scenario]["yardstick"]
        scale = yardstick / YARDSTICK_AT_TARGETS_US
        total = bare_total = 0.0
        for side in ("publish", "worker"):
            bare, added = figures[scenario][side]["bare"], figures[scenario][side]["added"]
            total, bare_total = total + added, bare_total + bare
            print(f"{scenario:<10} {side:<8} {bare:9.2f} {added:9.2f} {added / bare:8.1%}")
        verdict = "met" if total / scale <= target else "MISSED"
        missed |= total / scale > target
        print(
            f"  -> {scenario}: byok-tasks adds {total:.1f} µs per task, {total / bare_total:.1%} of bare Celery's; "
            f"one signal dispatch cost {yardstick:.2f} µs meanwhile, so in the targets' yardstick "
            f"{total / scale:.1f} µs (target: at most {target:g} µs): {verdict}"
        )
    growth = child("--memory")
    verdict = "met" if growth < RSS_TARGET_MB else "MISSED"
    missed |= growth >= RSS_TARGET_MB
    print(
        f"  -> memory: RSS grew {growth:.1f} MB from {RSS_FROM:,} to {RSS_TO:,} tasks of distinct users "
        f"(target: under {RSS_TARGET_MB:g} MB): {verdict}"
    )
    print(
        f"medians of {TASKS:,} tasks of each kind per scenario, bare Celery, byok-tasks and bare Celery with one "
        f"signal dispatch taking turns task by task; one dispatch cost {YARDSTICK_AT_TARGETS_US:g} µs where the "
        "targets were set"
    )
    return 1 if missed else 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--measure"]:
        print(json.dumps(measure()))
    elif sys.argv[1:2] == ["--memory"]:
        print(json.dumps(measure_memory()))
    else:
        sys.exit(main())
