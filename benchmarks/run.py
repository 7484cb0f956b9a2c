"""Every byok-tasks benchmark in one run: ``python benchmarks/run.py`` (``make bench``).

On the real Redis (``BYOK_BENCH_REDIS_URL``, default redis://127.0.0.1:6379/0), side by
side in one run: header sizes; publish cost and worker throughput of a trivial task, bare
Celery against byok-tasks and against sentry-sdk's and OpenTelemetry's Celery
integrations (``_celery_sections.py``); the failure path of one failed task
(``_failure_section.py``); throughput while Sentry is down (``_outage_section.py``); then
bench_hot_path.py, bench_classify.py, bench_keys.py, bench_rq.py, bench_telemetry.py and
bench_health.py, each a script of its own. ``_bench.py`` holds what they share. Each section prints
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
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

import redis

from benchmarks._bench import FULL, OTHER_BENCHMARKS, QUICK, REDIS_URL, RESULTS, ROOT, SECTIONS, Bench, Report
from benchmarks._celery_sections import header_sizes, publish_and_throughput
from benchmarks._failure_section import failure_path
from benchmarks._outage_section import outages

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
