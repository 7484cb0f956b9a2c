"""Every byok-tasks benchmark in one run: ``python benchmarks/run.py`` (``make bench``).

On the real Redis (``BYOK_BENCH_REDIS_URL``, default redis://127.0.0.1:6379/0), side by
side in one run: header sizes; publish cost and worker throughput of a trivial task, bare
Celery against byok-tasks and against sentry-sdk's and OpenTelemetry's Celery
integrations; the failure path of one failed task; throughput while Sentry is down; then
bench_classify.py, bench_keys.py, bench_rq.py and bench_telemetry.py. Each section prints
a table; a markdown summary is printed at the end and saved to benchmarks/results.md.
``--quick`` is a smoke run of about a minute. It reports and never gates: the exit status is 0 whatever the
figures, unless the benchmarks themselves could not run. benchmarks/README.md explains
the method and its limits.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib.metadata
import json
import os
import platform
import secrets
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

import redis

from benchmarks._procs import Child, ChildFailed, Worker, pop
from benchmarks._shared import PROVIDERS, SECRET, UID, VARIANTS
from benchmarks._stats import Figure, added, change, markdown_table, number, ratio, table, with_range
from byok_tasks.context import ByokContext
from byok_tasks.header import HeaderCodec
from byok_tasks.keys import Keyring
from byok_tasks.testing.provider_server import closed_port_url
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
OTHER_BENCHMARKS = ("bench_classify.py", "bench_keys.py", "bench_rq.py", "bench_telemetry.py", "bench_health.py")
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


# -- header size ------------------------------------------------------------------------------


def header_sizes(bench: Bench) -> None:
    plain, signed = HeaderCodec(), HeaderCodec.configure(SECRET)
    context = ByokContext(UID, frozenset(PROVIDERS))
    # A reference as SealedKeyStore.seal makes them.
    sealed = ByokContext(UID, frozenset(PROVIDERS), Keyring(ref=secrets.token_urlsafe(16)))
    rows = [
        [label, number(len(codec.encode(ctx).encode()))]
        for label, codec, ctx in (
            ("unsigned", plain, context),
            ("signed (HMAC-SHA256)", signed, context),
            ("unsigned, sealed-keys reference", plain, sealed),
            ("signed, sealed-keys reference", signed, sealed),
        )
    ]
    bench.report.section(
        "Header size",
        f"`HeaderCodec.encode` for a {len(UID)}-character uid and two providers ({', '.join(PROVIDERS)}), in bytes. "
        "The bytes each variant adds to a whole Celery message are in the publish section.",
        ["header", "bytes"],
        rows,
    )


# -- publish cost and throughput of the trivial task ------------------------------------------


def publish_and_throughput(bench: Bench) -> None:
    settings, variants = bench.settings, list(VARIANTS)
    publishers = {
        variant: bench.child(
            "benchmarks._variant",
            f"publisher-{variant}",
            {
                "BYOK_BENCH_APP": "benchmarks.apps.trivial",
                "BYOK_BENCH_VARIANT": variant,
                "BYOK_BENCH_QUEUE": bench.key("publish", variant),
                "SENTRY_DSN": bench.sentry.call("dsn"),
            },
        )
        for variant in variants
    }
    runs: dict[str, list[dict[str, Any]]] = {variant: [] for variant in variants}
    traces: dict[str, list[float]] = {variant: [] for variant in variants}
    for turn in range(settings.warm_up + settings.publish_rounds):
        for variant in rotated(variants, turn):
            run = publishers[variant].call("publish_cost", tasks=settings.publish_tasks)
            if run["published"] != settings.publish_tasks:
                raise ChildFailed(f"{variant}: {run['published']} of {settings.publish_tasks} messages reached Redis")
            if turn >= settings.warm_up:
                runs[variant].append(run)
        for variant in rotated(variants, turn):
            seconds = publishers[variant].call("trace_cost", calls=settings.trace_calls)
            if turn >= settings.warm_up:
                traces[variant].append(seconds / settings.trace_calls * 1e6)
    report_publish(bench, runs)
    report_trace(bench, {variant: Figure(tuple(values)) for variant, values in traces.items()})

    # Each variant's publisher writes one round once; every worker round gets a copy of it.
    for variant in variants:
        count = publishers[variant].call(
            "enqueue_round",
            queue=bench.key("round", variant),
            tasks=settings.throughput_tasks,
            marks_key=bench.key("marks", variant),
        )
        if count != settings.throughput_tasks + 2:
            raise ChildFailed(f"{variant}: the round holds {count} messages, not {settings.throughput_tasks + 2}")
        publishers[variant].close()
    bench.sentry.call("received")
    for pool in POOLS:
        throughput(bench, pool, variants)


def report_publish(bench: Bench, runs: dict[str, list[dict[str, Any]]]) -> None:
    tasks = bench.settings.publish_tasks
    wall = {v: Figure(tuple(run["wall"] / tasks * 1e6 for run in rs)) for v, rs in runs.items()}
    cpu = {v: Figure(tuple(run["cpu"] / tasks * 1e6 for run in rs)) for v, rs in runs.items()}
    last = {v: rs[-1] for v, rs in runs.items()}
    size = {v: int(run["message_bytes"]) for v, run in last.items()}
    bare_headers = last["bare"]["header_bytes"]
    rows = []
    for variant, label in VARIANTS.items():
        new_headers = {name: n for name, n in last[variant]["header_bytes"].items() if name not in bare_headers}
        rows.append(
            [
                label,
                with_range(wall[variant]),
                ratio(wall[variant].ratio_to(wall["bare"])),
                with_range(cpu[variant]),
                ratio(cpu[variant].ratio_to(cpu["bare"])),
                added(cpu[variant], cpu["bare"], 0),
                f"{size[variant]} ({size[variant] - size['bare']:+d})",
                ", ".join(f"{name} {n}" for name, n in new_headers.items()) or "-",
            ]
        )
    bench.report.section(
        "Publish cost",
        f"µs per `.delay()` to the Redis broker, median [min-max] of {bench.settings.publish_rounds} rounds of "
        f"{tasks} per variant, each variant in its own process, taking turns within each round. Ratios are taken "
        "round by round against bare Celery. CPU is the publishing process's (its background threads included); "
        "message is the bytes of one message in Redis, and the headers each variant adds to it.",
        [
            "variant",
            "wall µs",
            "xbare",
            "CPU µs",
            "xbare (CPU)",
            "added CPU µs",
            "message bytes",
            "headers added (bytes)",
        ],
        rows,
    )
    judge(bench.report, "publish cost", {v: wall[v].ratio_to(wall["bare"]) for v in VARIANTS}, higher_is_worse=True)
    judge(bench.report, "publish CPU", {v: cpu[v].ratio_to(cpu["bare"]) for v in VARIANTS}, higher_is_worse=True)


def report_trace(bench: Bench, cpu: dict[str, Figure]) -> None:
    bench.worker_added_us = {v: cpu[v].median - cpu["bare"].median for v in ("byok", "byok-signed")}
    rows = [
        [
            label,
            with_range(cpu[variant], 1),
            ratio(cpu[variant].ratio_to(cpu["bare"])),
            added(cpu[variant], cpu["bare"]),
        ]
        for variant, label in VARIANTS.items()
    ]
    bench.report.section(
        "Worker's side, in process",
        f"CPU µs per task of the tracer a Celery worker runs each task in (signals, the variant's hooks, the task), "
        f"on a message the variant published, without the broker: median [min-max] of "
        f"{bench.settings.publish_rounds} rounds of {bench.settings.trace_calls}. What each variant adds to a task "
        "in the worker, measured without the noise of the broker's round trips.",
        ["variant", "CPU µs", "xbare", "added µs"],
        rows,
    )


def throughput(bench: Bench, pool: str, variants: list[str]) -> None:
    settings = bench.settings
    workers = {
        variant: bench.worker(
            "benchmarks.apps.trivial",
            f"{variant}-{pool}",
            pool,
            {"BYOK_BENCH_VARIANT": variant, "SENTRY_DSN": bench.sentry.call("dsn")},
        )
        for variant in variants
    }
    bench.wait_ready(workers)
    rates: dict[str, list[float]] = {v: [] for v in variants}
    cpus: dict[str, list[float]] = {v: [] for v in variants}
    spans = 0
    for turn in range(settings.warm_up + settings.throughput_rounds):
        for variant in rotated(variants, turn):
            run = bench.run_round(
                workers[variant], bench.key("round", variant), bench.key("marks", variant), settings.throughput_tasks
            )
            if turn >= settings.warm_up:
                rates[variant].append(run.tasks_per_second)
                cpus[variant].append(run.cpu_us_per_task)
            if variant == "otel":
                spans = run.end_mark.get("spans_exported", 0)
    sentry_envelopes = bench.sentry.call("received")["envelopes"]
    for worker in workers.values():
        worker.stop()
    rate = {v: Figure(tuple(values)) for v, values in rates.items()}
    cpu = {v: Figure(tuple(values)) for v, values in cpus.items()}
    rows = [
        [
            label,
            with_range(rate[variant]),
            ratio(rate[variant].ratio_to(rate["bare"])),
            with_range(cpu[variant]),
            ratio(cpu[variant].ratio_to(cpu["bare"])),
        ]
        for variant, label in VARIANTS.items()
    ]
    bench.report.section(
        f"Throughput, {pool} pool (-c {POOLS[pool]})",
        f"Tasks per second of a real `celery worker -P {pool}`, median [min-max] of {settings.throughput_rounds} "
        f"rounds of {settings.throughput_tasks} tasks waiting in its queue, timed by the worker's clock from the "
        "first task to the last; the variants' workers take turns. CPU is µs per task of the worker's processes.",
        ["variant", "tasks/s", "xbare", "worker CPU µs/task", "xbare (CPU)"],
        rows,
        [
            *expected_from_trace(bench, cpu["bare"]),
            f"Sanity: the loopback Sentry received {sentry_envelopes} envelopes from the sentry-sdk workers; "
            f"the OpenTelemetry pool process that ran the last round had exported {spans} spans.",
        ],
    )
    judge(bench.report, f"throughput ({pool})", {v: rate[v].ratio_to(rate["bare"]) for v in VARIANTS})
    for line in expected_from_trace(bench, cpu["bare"]):
        bench.report.verdict(f"throughput ({pool}): {line}")


def expected_from_trace(bench: Bench, bare_cpu: Figure) -> list[str]:
    """The throughput cost the in-process figures predict: a steadier estimate than tasks/s on a busy machine."""
    if not bench.worker_added_us:
        return []
    shares = {v: us / bare_cpu.median for v, us in bench.worker_added_us.items()}
    return [
        f"From the in-process figures, byok-tasks adds {bench.worker_added_us['byok']:.1f} µs "
        f"(signed {bench.worker_added_us['byok-signed']:.1f} µs) of CPU to each task: {shares['byok']:.1%} "
        f"({shares['byok-signed']:.1%}) of the {bare_cpu.median:.0f} µs of CPU bare Celery's worker spends on one "
        "here, the throughput it takes off a worker that is short of CPU."
    ]


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


# -- the failure path -------------------------------------------------------------------------


def failure_path(bench: Bench) -> None:
    settings = bench.settings
    env = {"SENTRY_DSN": bench.sentry.call("dsn"), "OPENAI_BASE_URL": f"{bench.sandbox.url}/v1"}
    children = {
        variant: bench.child("benchmarks._failure_path", f"failure-{variant}", {"BYOK_BENCH_VARIANT": variant, **env})
        for variant in ("plain", "byok")
    }
    bench.sentry.call("received")
    runs: dict[str, list[dict[str, float]]] = {"plain": [], "byok": []}
    lost: list[str] = []
    for turn in range(settings.warm_up + settings.capture_rounds):
        for variant in rotated(list(children), turn):
            run = children[variant].call("capture", events=settings.capture_events)
            received = bench.sentry.call("received")
            expected_tags = settings.capture_events if variant == "byok" else 0
            if received["events"] != settings.capture_events or received["tagged"] != expected_tags:
                lost.append(f"{variant} round {turn}: {received}")
            if turn >= settings.warm_up:
                runs[variant].append(run)
    classify_us = Figure(
        tuple(
            children["byok"].call("classify", number=settings.classify_calls) / settings.classify_calls * 1e6
            for _ in range(settings.capture_rounds)
        )
    )
    events = settings.capture_events

    def figure(variant: str, measure: str) -> Figure:
        return Figure(tuple(run[measure] / events * 1e6 for run in runs[variant]))

    rows = [["`byok_tasks.classify` alone", "-", with_range(classify_us, 1), "-", "-"]]
    for measure, label in (
        ("thread", "capture, in the failing task's thread"),
        ("delivered", "capture until delivered to Sentry"),
        ("cpu", "CPU of the process, sending included"),
    ):
        plain, byok = figure("plain", measure), figure("byok", measure)
        rows.append(
            [
                label,
                with_range(plain),
                with_range(byok),
                ratio(byok.ratio_to(plain)),
                f"{byok.median - plain.median:+,.0f}",
            ]
        )
    notes = [
        f"Every capture reached the loopback Sentry, tagged by ByokIntegration where it ran ({events} a round)."
        if not lost
        else f"Events missing or untagged at the loopback Sentry: {'; '.join(lost)}"
    ]
    bench.report.section(
        "Failure path: one failed task",
        f"µs per failure, median [min-max] of {settings.capture_rounds} rounds of {events}: a real OpenAI SDK "
        "`AuthenticationError` (from the loopback sandbox, raised under a BYOK context and `llm_call`) captured as "
        "sentry-sdk's Celery integration captures a task's failure, sent to a loopback Sentry. With ByokIntegration "
        "that is classify + enrich (tags, fingerprint, level, user) + scrub + send.",
        ["measure", "plain sentry-sdk", "with ByokIntegration", "ratio", "added µs"],
        rows,
        notes,
    )


# -- Sentry outages -----------------------------------------------------------------------------


def outages(bench: Bench) -> None:
    settings = bench.settings
    dsns = {
        "reachable": bench.sentry.call("dsn"),
        "refused": closed_port_url().replace("http://", "http://byok-public-key@") + "/1",
        **{case: bench.collector(case).call("dsn") for case in ("error", "rate_limited", "slow")},
    }
    template, marks = bench.key("round", "llm"), bench.key("marks", "llm")
    publisher = bench.child(
        "benchmarks._variant",
        "publisher-llm",
        {"BYOK_BENCH_APP": "benchmarks.apps.llm", "BYOK_BENCH_QUEUE": bench.key("publish", "llm")},
    )
    publisher.call("enqueue_round", queue=template, tasks=settings.outage_tasks, marks_key=marks)
    publisher.close()
    workers = {
        case: bench.worker(
            "benchmarks.apps.llm",
            f"llm-{case}",
            OUTAGE_POOL,
            {
                "SENTRY_DSN": dsn,
                "OPENAI_BASE_URL": f"{bench.sandbox.url}/v1",
                "BYOK_BENCH_FAILURES_KEY": bench.key("failures", case),
            },
        )
        for case, dsn in dsns.items()
    }
    bench.wait_ready(workers)
    bench.sentry.call("received")
    cases = list(OUTAGES)
    rates: dict[str, list[float]] = {c: [] for c in cases}
    cpus: dict[str, list[float]] = {c: [] for c in cases}
    failed: dict[str, list[int]] = {c: [] for c in cases}
    received = 0
    for turn in range(settings.warm_up + settings.outage_rounds):
        for case in rotated(cases, turn):
            run = bench.run_round(workers[case], template, marks, settings.outage_tasks)
            # The last tasks may still be finishing in the other pool process when the end mark runs.
            count = wait_for_count(bench.store, bench.key("failures", case), settings.outage_tasks, timeout=30)
            bench.store.decrby(bench.key("failures", case), count)
            if turn >= settings.warm_up:
                rates[case].append(run.tasks_per_second)
                cpus[case].append(run.cpu_us_per_task)
                failed[case].append(count)
            if case == "reachable":
                # Until the worker's transport has sent what it holds: the events of this round only.
                tagged = bench.sentry.call("received", settle=1.0)["tagged"]
                received += tagged if turn >= settings.warm_up else 0
    alive = {case: worker.alive() for case, worker in workers.items()}
    for worker in workers.values():
        worker.stop()
    rate = {c: Figure(tuple(values)) for c, values in rates.items()}
    cpu = {c: Figure(tuple(values)) for c, values in cpus.items()}
    failures = settings.outage_tasks * settings.outage_rounds
    rows = [
        [
            label,
            with_range(rate[case]),
            ratio(rate[case].ratio_to(rate["reachable"])),
            with_range(cpu[case]),
            f"{min(failed[case])}-{max(failed[case])} of {settings.outage_tasks}",
            "yes" if alive[case] else "NO",
        ]
        for case, label in OUTAGES.items()
    ]
    bench.report.section(
        f"Sentry outage: failing LLM tasks, {OUTAGE_POOL} pool (-c {POOLS[OUTAGE_POOL]})",
        f"Tasks per second, median [min-max] of {settings.outage_rounds} rounds of {settings.outage_tasks} tasks, "
        "each a real OpenAI SDK call with an invalid key to the loopback sandbox, for a user of its own, in a worker "
        "with `sentry_sdk.init(dsn=..., integrations=[ByokIntegration()])`; every failure is an event (storm "
        "control's budget raised so that it holds none back). Ratios against Sentry reachable, round by round.",
        ["Sentry", "tasks/s", "xreachable", "worker CPU µs/task", "tasks failed", "worker alive"],
        rows,
        [
            f"While reachable, the loopback Sentry received {received} tagged events for {failures} failures"
            + ("." if received >= failures else " (sentry-sdk drops what its queue of 100 events cannot hold).")
        ],
    )
    for case in cases[1:]:
        figure = rate[case].ratio_to(rate["reachable"])
        same = all(count == settings.outage_tasks for count in failed[case]) and alive[case]
        resolved = noise(figure, OUTAGE_TARGET)
        bench.report.verdict(
            f"Sentry {OUTAGES[case]}: throughput {change(figure.median)} against Sentry reachable (target: at most "
            f"{OUTAGE_TARGET:.0%} slower) -> {'met' if figure.median >= 1 - OUTAGE_TARGET else 'MISSED'}{resolved}; "
            f"{'every task failed as it should, worker alive' if same else 'tasks LOST or worker DOWN'}"
        )


def wait_for_count(store: redis.Redis, key: str, expected: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while (count := int(store.get(key) or 0)) < expected and time.monotonic() < deadline:
        time.sleep(0.05)
    return count


# -- the other benchmarks ---------------------------------------------------------------------------


def other_benchmarks(bench: Bench) -> None:
    for script in OTHER_BENCHMARKS:
        path = Path(__file__).resolve().parent / script
        print(f"\n== {script} ==")
        if not path.exists():
            bench.report.note(f"{script} is not there yet: skipped")
            continue
        env = {**os.environ, "PYTHONPATH": str(ROOT), "BYOK_BENCH_REDIS_URL": REDIS_URL}
        try:
            done = subprocess.run(
                [sys.executable, str(path)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
            )
        except subprocess.TimeoutExpired:
            bench.report.note(f"{script} did not finish within 600 s")
            continue
        output = (done.stdout + done.stderr).rstrip()
        print(output)
        status = f" (exit status {done.returncode}: a target of its own missed)" if done.returncode else ""
        bench.report.markdown.append(f"### {script}{status}\n\n```\n{output}\n```\n")
        if done.returncode:
            bench.report.note(f"{script} exited with status {done.returncode}")


# -- the run ------------------------------------------------------------------------------------


def versions() -> str:
    names = ("celery", "kombu", "sentry-sdk", "opentelemetry-sdk", "opentelemetry-instrumentation-celery", "openai")
    found = []
    for name in names:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            found.append(f"{name} {importlib.metadata.version(name)}")
    return ", ".join(found)


def machine(store: redis.Redis, started_load: tuple[float, float, float]) -> str:
    server = store.info("server")
    load = " / ".join(f"{value:.2f}" for value in started_load)
    end = " / ".join(f"{value:.2f}" for value in os.getloadavg())
    return (
        f"{datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}; {os.cpu_count()} CPUs; "
        f"load average (1/5/15 min) {load} at start, {end} at the end; Python {platform.python_version()}; "
        f"Redis {server.get('redis_version')} at {REDIS_URL}; {versions()}"
    )


def summary(report: Report, settings_name: str, machine_line: str, elapsed: float) -> str:
    lines = [
        "## Benchmark results",
        "",
        f"`python benchmarks/run.py{' --quick' if settings_name == 'quick' else ''}`, "
        f"{elapsed / 60:.1f} min. Machine: {machine_line}.",
        "",
        "### Verdicts",
        "",
        *(f"- {verdict}" for verdict in report.verdicts),
        *(f"- note: {note}" for note in report.notes),
        "",
        *report.markdown,
    ]
    return "\n".join(lines).rstrip() + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a smoke run of about a minute: few rounds, small N")
    parser.add_argument(
        "--only", action="append", choices=SECTIONS, help="run this section only (repeatable); default: all"
    )
    args = parser.parse_args(argv)
    settings = QUICK if args.quick else FULL
    store = redis.Redis.from_url(REDIS_URL)
    try:
        store.ping()
    except redis.ConnectionError:
        print(f"Redis does not answer at {REDIS_URL}: start it, or set BYOK_BENCH_REDIS_URL", file=sys.stderr)
        return 1
    logs = Path(tempfile.mkdtemp(prefix="byok-bench-logs-"))
    started, started_load = time.monotonic(), os.getloadavg()
    report = Report()
    sections: dict[str, Callable[[Bench], None]] = {
        "headers": header_sizes,
        "publish": publish_and_throughput,
        "failure": failure_path,
        "outage": outages,
        "others": other_benchmarks,
    }
    print(f"byok-tasks benchmarks ({'quick' if args.quick else 'full'} run); process logs in {logs}")
    with contextlib.ExitStack() as stack:
        bench = Bench(settings, store, report, logs, stack)
        stack.callback(cleanup, store, bench.prefix)
        for name, run in sections.items():
            if args.only and name not in args.only:
                continue
            section_started = time.monotonic()
            try:
                run(bench)
            except Exception as exc:  # the other sections still run, and the summary says what failed
                traceback.print_exc()
                report.note(f"the {name} section could not finish: {type(exc).__name__}: {exc}")
            print(f"  ({name}: {time.monotonic() - section_started:.0f} s)")
    text = summary(report, "quick" if args.quick else "full", machine(store, started_load), time.monotonic() - started)
    print(f"\n{'=' * 100}\n{text}")
    RESULTS.write_text(text)
    print(f"saved to {RESULTS.relative_to(ROOT)}")
    return 0


def cleanup(store: redis.Redis, prefix: str) -> None:
    """Everything this run created in Redis: its queues, their kombu bindings, its counters and marks."""
    for pattern in (f"{prefix}*", f"_kombu.binding*.{prefix}*"):  # kombu's binding and binding_permanent keys
        for name in store.scan_iter(match=pattern, count=1000):
            store.delete(name)


if __name__ == "__main__":
    sys.exit(main())
