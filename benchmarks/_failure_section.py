"""run.py's failure-path section: what one failed LLM task costs, with each error tracker."""

from __future__ import annotations

from benchmarks._bench import Bench, rotated
from benchmarks._stats import Figure, ratio, with_range

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
