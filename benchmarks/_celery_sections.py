"""run.py's Celery sections: header sizes, publish cost, the worker's side in process, throughput."""

from __future__ import annotations

import secrets
from typing import Any

from benchmarks._bench import POOLS, Bench, judge, rotated
from benchmarks._procs import ChildFailed
from benchmarks._shared import PROVIDERS, SECRET, UID, VARIANTS
from benchmarks._stats import Figure, added, number, ratio, with_range
from byok_tasks.context import ByokContext
from byok_tasks.header import HeaderCodec
from byok_tasks.keys import Keyring

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
