"""What every section of run.py shares: the settings of a run, its report, the processes it drives, the verdicts."""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import redis

from benchmarks._procs import Child, Worker, pop
from benchmarks._shared import VARIANTS
from benchmarks._stats import Figure, change, markdown_table, table
from byok_tasks.testing.sandbox import ProviderSandbox

ROOT = Path(__file__).resolve().parent.parent
REDIS_URL = os.environ.get("BYOK_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
RESULTS = Path(__file__).resolve().parent / "results.md"
TARGET = 0.03  # byok-tasks: at most 3% more publish cost, at most 3% less throughput
OUTAGE_TARGET = 0.05  # throughput during a Sentry outage at most 5% below a run with Sentry reachable
POOLS = {"solo": 1, "prefork": 2}
OUTAGE_POOL = "prefork"
OUTAGES = {
    "reachable": "Sentry reachable",
    "refused": "connection refused",
    "error": "answering 500",
    "rate_limited": "answering 429",
    "slow": "answering after 10 s",
}
OTHER_BENCHMARKS = (
    "bench_hot_path.py",
    "bench_classify.py",
    "bench_keys.py",
    "bench_rq.py",
    "bench_telemetry.py",
    "bench_health.py",
)
SECTIONS = ("headers", "publish", "failure", "outage", "others")  # "publish" includes throughput


@dataclass(frozen=True)
class Settings:
    warm_up: int  # rounds run first and not counted: connections, caches and lazy imports warm up
    publish_tasks: int  # .delay() calls per round and variant
    publish_rounds: int  # also the rounds of trace_calls
    trace_calls: int  # runs of the worker's tracer per round and variant
    throughput_tasks: int  # tasks per round and worker
    throughput_rounds: int
    capture_events: int  # failures captured per round (sentry-sdk's queue holds 100)
    capture_rounds: int
    classify_calls: int
    outage_tasks: int
    outage_rounds: int


FULL = Settings(
    warm_up=1,
    publish_tasks=1000,
    publish_rounds=9,
    trace_calls=2000,
    throughput_tasks=1500,
    throughput_rounds=7,
    capture_events=50,
    capture_rounds=9,
    classify_calls=2000,
    outage_tasks=150,
    outage_rounds=5,
)
QUICK = Settings(
    warm_up=0,
    publish_tasks=200,
    publish_rounds=2,
    trace_calls=300,
    throughput_tasks=200,
    throughput_rounds=1,
    capture_events=10,
    capture_rounds=2,
    classify_calls=300,
    outage_tasks=30,
    outage_rounds=1,
)

T = TypeVar("T")


def rotated(items: Sequence[T], turn: int) -> list[T]:
    """``items`` starting at a different one each round, so that no variant always goes first."""
    start = turn % len(items)
    return [*items[start:], *items[:start]]


@dataclass
class Report:
    """What the run found: printed as it goes, and gathered into the markdown summary."""

    markdown: list[str] = field(default_factory=list)
    verdicts: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def section(
        self, title: str, intro: str, headers: Sequence[str], rows: Sequence[Sequence[str]], notes: Sequence[str] = ()
    ) -> None:
        print(f"\n== {title} ==\n{intro}\n\n{table(headers, rows)}")
        for note in notes:
            print(f"  {note}")
        self.markdown.append(f"### {title}\n\n{intro}\n\n{markdown_table(headers, rows)}\n")
        self.markdown.extend(f"{note}\n" for note in notes)

    def verdict(self, text: str) -> None:
        print(f"  -> {text}")
        self.verdicts.append(text)

    def note(self, text: str) -> None:
        print(f"  note: {text}")
        self.notes.append(text)


@dataclass
class Bench:
    settings: Settings
    store: redis.Redis
    report: Report
    logs: Path
    stack: contextlib.ExitStack
    prefix: str = field(default_factory=lambda: f"byok-bench-{uuid.uuid4().hex[:8]}")
    _sentry: Child | None = None
    _sandbox: ProviderSandbox | None = None
    # CPU µs byok-tasks adds to a task in the worker, measured in process (unsigned, signed).
    worker_added_us: dict[str, float] = field(default_factory=dict)

    def key(self, *parts: str) -> str:
        return "-".join([self.prefix, *parts])

    def child(self, module: str, name: str, env: dict[str, str]) -> Child:
        child = Child(module, {"BYOK_BENCH_BROKER": REDIS_URL, **env}, self.logs / f"{name}.log")
        self.stack.callback(child.close)
        return child

    def collector(self, behaviour: str) -> Child:
        return self.child("benchmarks._collector", f"sentry-{behaviour}", {"BYOK_BENCH_SENTRY_BEHAVIOUR": behaviour})

    @property
    def sentry(self) -> Child:
        """The loopback Sentry that answers normally, shared by every section."""
        if self._sentry is None:
            self._sentry = self.collector("ok")
        return self._sentry

    @property
    def sandbox(self) -> ProviderSandbox:
        if self._sandbox is None:
            self._sandbox = ProviderSandbox()
            self._sandbox.start()
            self.stack.callback(self._sandbox.stop)
        return self._sandbox

    def worker(self, app_module: str, name: str, pool: str, env: dict[str, str]) -> Worker:
        queue = self.key(name)
        worker = Worker(
            app_module,
            pool,
            POOLS[pool],
            queue,
            {
                "BYOK_BENCH_QUEUE": queue,
                "BYOK_BENCH_READY_KEY": f"{queue}-ready",
                "BYOK_BENCH_BROKER": REDIS_URL,
                **env,
            },
            self.logs / f"worker-{name}.log",
        )
        self.stack.callback(worker.stop)
        return worker

    def wait_ready(self, workers: dict[str, Worker]) -> None:
        for worker in workers.values():
            pop(self.store, f"{worker.queue}-ready", worker, timeout=180)

    def run_round(self, worker: Worker, template: str, marks_key: str, tasks: int) -> Round:
        """Hand ``worker`` a copy of the round held in ``template``, and time it."""
        # Copied in one step, so that the worker finds the whole round waiting, as if preloaded.
        self.store.copy(template, worker.queue)
        timeout = 60 + tasks * 0.1
        start = json.loads(pop(self.store, marks_key, worker, timeout))
        cpu_at_start = worker.cpu_seconds()
        end = json.loads(pop(self.store, marks_key, worker, timeout))
        cpu = worker.cpu_seconds() - cpu_at_start
        return Round(tasks / (end["time"] - start["time"]), cpu / tasks * 1e6, end)


@dataclass(frozen=True)
class Round:
    tasks_per_second: float
    cpu_us_per_task: float  # the worker's processes, from the first task's start to the last's
    end_mark: dict[str, Any]


def noise(figure: Figure, target: float) -> str:
    """Whether the rounds agree well enough to tell a difference of ``target`` from chance."""
    if len(figure.values) < 3:
        return f"; {len(figure.values)} round(s) only: noise not estimated"
    if figure.spread >= target:
        return f"; noise ±{figure.spread:.1%} is not below the {target:.0%} tested: NOT RESOLVED"
    return f"; noise ±{figure.spread:.1%}"


def judge(report: Report, what: str, ratios: dict[str, Figure], *, higher_is_worse: bool = False) -> None:
    """The verdicts on one figure: byok-tasks within the target, and cheaper than each peer."""

    def cost(variant: str) -> float:  # how much worse than bare: +0.02 is 2% worse
        factor = ratios[variant].median
        return factor - 1 if higher_is_worse else 1 - factor

    for variant in ("byok", "byok-signed"):
        figure = ratios[variant]
        within = cost(variant) <= TARGET
        resolved = noise(figure, TARGET)
        report.verdict(
            f"{what}, {VARIANTS[variant]}: {change(figure.median)} against bare Celery (target: "
            f"{'at most +' if higher_is_worse else 'at most -'}{TARGET:.0%}) -> {'met' if within else 'MISSED'}"
            f"{resolved}"
        )
    worst_byok = max(cost("byok"), cost("byok-signed"))
    peers = ("sentry", "sentry-traced", "otel")
    comparisons = ", ".join(f"{VARIANTS[p]} {change(ratios[p].median)}" for p in peers)
    cheaper = all(worst_byok < cost(p) for p in peers)
    report.verdict(
        f"{what}: byok-tasks {'costs less than every peer' if cheaper else 'does NOT cost less than every peer'} "
        f"({comparisons})"
    )
