"""run.py's Sentry-outage section: throughput while Sentry refuses, errors, rate-limits or hangs."""

from __future__ import annotations

import time

import redis

from benchmarks._bench import OUTAGE_POOL, OUTAGE_TARGET, OUTAGES, POOLS, Bench, noise, rotated
from benchmarks._stats import Figure, change, ratio, with_range
from byok_tasks.testing.provider_server import closed_port_url

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
