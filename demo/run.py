"""Run the whole story on one machine with nothing installed, and stop everything afterwards.

A broker (embedded, unless BROKER_URL names one), a real Celery worker running
``worker.py``, a provider sandbox on loopback that answers like OpenAI and Anthropic, and
a Sentry-protocol collector on loopback (unless SENTRY_DSN names a real Sentry). A
web-like publisher enqueues a batch for users with and without their own keys; the demo
ends with the view on-call needs (failures by whose key, provider and reason) and with key
health: each user's key_status, the user hook's calls (once per revoked key), and the
provider calls the breaker did not make.
"""

from __future__ import annotations

import ast
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn, cast

import redis
from celery.result import AsyncResult
from rich.console import Console
from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from byok_tasks import KeyHealth, KeyStatus, key_status
from byok_tasks.health import TRACKED
from byok_tasks.keys import ENCRYPTION_KEY_ENV, generate_encryption_key
from byok_tasks.testing import embedded_redis
from byok_tasks.testing.sandbox import ProviderSandbox, sandbox_key
from byok_tasks.testing.sentry_collector import SentryCollector
from byok_tasks.triage import Group, TriageView, render, triage
from demo.publisher import User, publish_batch, publisher_app, users

ROOT = Path(__file__).resolve().parents[1]
EVENTS_FILE = Path("demo-events.json")
_TOLD = re.compile(r"tell_user\(uid='[^']*', provider='[^']*', reason='[^']*', failures=\d+\)")
_FIELD = re.compile(r"(\w+)=('(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|None|-?\d+)")


class _Terminated(KeyboardInterrupt):
    """A plain `kill` (SIGTERM), unwound the way Ctrl-C is."""


def main() -> None:
    console = Console()
    signal.signal(signal.SIGTERM, _terminate)
    try:
        with ExitStack() as stack:
            _run(console, stack)
    except KeyboardInterrupt as stop:
        console.print("\n[yellow]Interrupted: everything the demo started has been stopped.[/]")
        _die_of(signal.SIGTERM if isinstance(stop, _Terminated) else signal.SIGINT)


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise _Terminated


def _die_of(signum: signal.Signals) -> NoReturn:
    # Dying of the signal tells the shell or make that the demo was stopped, not that it failed.
    # It is also the one ending that does not depend on how the interpreter winds down: after a
    # caught Ctrl-C, CPython 3.11 now and then turned sys.exit(130) into a death by SIGINT of
    # its own (strace showed it kill itself, once in 25 runs on a loaded machine).
    sys.stdout.flush()
    sys.stderr.flush()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)
    raise SystemExit(128 + signum)  # not reached: the default action of both signals ends the process


# Line breaks only between sentences: rich wraps the rest to the terminal, and a break
# written inside a sentence shows as a ragged half-line wherever the terminal is narrower.
INTRO = (
    "A product where users may bring their own OpenAI or Anthropic keys runs its LLM work in "
    "Celery. Some users' keys are revoked or out of credits, and so is one of the platform's.\n"
    "byok-tasks tells on-call which failures are ours to fix, and which users to tell."
)


def intro_panel() -> Panel:
    return Panel(INTRO, title="byok-tasks demo", border_style="cyan")


def _run(console: Console, stack: ExitStack) -> None:
    console.print(intro_panel())
    env, running = _start_services(stack)
    log_path = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="byok-demo-"))) / "worker.log"
    worker = _start_worker(stack, env, log_path)
    running.add_row(
        "worker", f"celery -A worker worker -P threads (pid {worker.pid})", "real Celery, running worker.py"
    )
    console.print(running)

    batch = users()
    table = Table(title="Who is asking", title_justify="left")
    for column in ("user", "keys", "conversations"):
        table.add_column(column)
    for user in batch:
        table.add_row(user.uid, user.story, str(user.conversations))
    console.print(table)

    os.environ.update({name: env[name] for name in ("BYOK_TASKS_SECRET", ENCRYPTION_KEY_ENV)})
    app = stack.enter_context(publisher_app(env["BROKER_URL"], env["BROKER_URL"]))
    results = publish_batch(app, batch)
    _wait(console, results)

    outcomes = Counter(result.state for result in results)
    console.print(
        f"\nTasks: [green]{outcomes['SUCCESS']} succeeded[/], [red]{outcomes['FAILURE']} failed[/] "
        f"({sum(1 for r in results if r.state == 'FAILURE' and 'ByokContextRequired' in repr(r.result))} "
        "refused for lack of a BYOK context)\n"
    )
    failures = _failures_in_log(log_path)
    collector = cast("SentryCollector | None", env.get("collector"))
    if collector is not None:
        events = collector.quiet_for(1.0)
        collector.save(EVENTS_FILE)
        _show_events(console, events)
        render(triage(events), failures=failures, console=console)
    else:
        render(_view_from_log(failures), failures=failures, console=console)
        console.print("[dim]The events went to your Sentry project (SENTRY_DSN).[/]")
    _show_counters(console, env.get("METRICS_PORT"))
    _show_key_health(console, env["BROKER_URL"], batch, log_path, failures)
    _check_keys(console, env["BROKER_URL"], [key for user in batch for key in user.keys.values()])
    _next_steps(console, collector is not None)


def _tag_reader(tag: str) -> Callable[[dict[str, Any]], Any]:
    return lambda event: (event.get("tags") or {}).get(tag, "-")


def _show_events(console: Console, events: list[dict[str, Any]]) -> None:
    """One BYOK and one platform event, as Sentry received them."""
    table = Table(title="Two of the events, as Sentry received them", title_justify="left")
    table.add_column("")
    shown = []
    for source in ("byok", "platform"):
        event = next((e for e in events if (e.get("tags") or {}).get("llm.source") == source), None)
        if event is not None:
            shown.append(event)
            table.add_column(f"llm.source:{source}")
    if not shown:
        return
    rows: list[tuple[str, Callable[[dict[str, Any]], Any]]] = [
        ("level", lambda e: e.get("level")),
        ("user.id", lambda e: (e.get("user") or {}).get("id", "-")),
        ("fingerprint", lambda e: " / ".join(e.get("fingerprint") or [])),
        ("message", lambda e: e["exception"]["values"][-1]["value"][:56] + "…"),
    ]
    for tag in ("llm.provider", "llm.reason", "llm.status", "llm.model", "llm.feature", "byok.uid"):
        rows.append((tag, _tag_reader(tag)))
    for name, value in rows:
        table.add_row(name, *(str(value(event)) for event in shown))
    console.print(table)


def _start_services(stack: ExitStack) -> tuple[dict[str, Any], Table]:
    running = Table(title="What is running", title_justify="left")
    for column in ("part", "where", "what it is"):
        running.add_column(column)
    broker = os.environ.get("BROKER_URL")
    if broker:
        running.add_row("broker", broker, "yours (BROKER_URL)")
    else:
        embedded = embedded_redis.serve()
        stack.callback(embedded.close)
        broker = embedded.url
        running.add_row("broker", broker, "embedded Redis-protocol server (fakeredis)")
    sandbox = stack.enter_context(ProviderSandbox())
    running.add_row("providers", sandbox.url, "[bold]SANDBOX[/] on loopback answering like OpenAI and Anthropic")
    env: dict[str, Any] = {
        "BROKER_URL": broker,
        "OPENAI_BASE_URL": f"{sandbox.url}/v1",
        "ANTHROPIC_BASE_URL": sandbox.url,
        # The platform's own keys: OpenAI is fine, the Anthropic account has run dry.
        "OPENAI_API_KEY": sandbox_key("openai", "ok"),
        "ANTHROPIC_API_KEY": sandbox_key("anthropic", "nocredit"),
        "BYOK_TASKS_SECRET": secrets.token_urlsafe(32),
        ENCRYPTION_KEY_ENV: generate_encryption_key(),
    }
    if _prometheus_installed():
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            env["METRICS_PORT"] = str(sock.getsockname()[1])
        running.add_row("metrics", f"127.0.0.1:{env['METRICS_PORT']}", "the worker's Prometheus endpoint")
    dsn = os.environ.get("SENTRY_DSN")
    if dsn:
        env["SENTRY_DSN"] = dsn
        running.add_row("Sentry", "SENTRY_DSN", "yours")
    else:
        collector = stack.enter_context(SentryCollector())
        env["SENTRY_DSN"] = collector.dsn
        env["collector"] = collector
        running.add_row("Sentry", collector.dsn.split("@")[1], "Sentry-protocol collector on loopback")
    return env, running


def _prometheus_installed() -> bool:
    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        return False
    return True


def _show_counters(console: Console, port: str | None) -> None:
    """The worker's Prometheus counters after the batch: what a dashboard or an alert would read."""
    if port is None:
        return
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    lines = []
    for family in text_string_to_metric_families(text):
        if family.name not in ("byok_llm_failures", "byok_llm_events_suppressed"):
            continue
        counts: Counter[str] = Counter()
        for sample in family.samples:
            if sample.name.endswith("_total"):
                labels = sample.labels
                counts[f"{labels['source']}/{labels['provider']}/{labels['reason']}"] += int(sample.value)
        shown = ", ".join(f"{key} {value}" for key, value in sorted(counts.items())) or "none"
        lines.append(f"  [bold]{family.name}_total[/] by source/provider/reason: {shown}")
    console.print("Prometheus counters on the worker's /metrics:\n" + "\n".join(lines) + "\n")


def _start_worker(stack: ExitStack, env: dict[str, Any], log_path: Path) -> subprocess.Popen[bytes]:
    worker_env = {**os.environ, **{k: v for k, v in env.items() if isinstance(v, str)}}
    with log_path.open("wb") as log:
        worker = subprocess.Popen(
            [
                sys.executable, "-m", "celery", "-A", "worker", "worker", "-P", "threads", "-c", "8",
                "-n", "demo@%h", "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "INFO",
            ],
            cwd=ROOT, env=worker_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    stack.callback(_stop, worker)
    deadline = time.monotonic() + 60
    while " ready." not in log_path.read_text(errors="replace"):
        if worker.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"The worker did not start:\n{log_path.read_text(errors='replace')}")
        time.sleep(0.1)
    return worker


def _stop(worker: subprocess.Popen[bytes]) -> None:
    # The worker leads its own process group: stopping the group leaves nothing behind.
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        try:
            os.killpg(worker.pid, sig)
        except ProcessLookupError:
            return
        try:
            worker.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _wait(console: Console, results: list[AsyncResult]) -> None:
    columns = (TextColumn("tasks"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        bar = progress.add_task("tasks", total=len(results))
        pending = list(results)
        deadline = time.monotonic() + 120
        while pending and time.monotonic() < deadline:
            pending = [result for result in pending if not result.ready()]
            progress.update(bar, completed=len(results) - len(pending))
            time.sleep(0.2)


def _failures_in_log(log_path: Path) -> dict[tuple[str, str, str], int]:
    """Every failure's structured log line, counted by (source, provider, reason)."""
    counts: Counter[tuple[str, str, str]] = Counter()
    for line in log_path.read_text(errors="replace").splitlines():
        if "llm failure " not in line:
            continue
        fields = {name: ast.literal_eval(value) for name, value in _FIELD.findall(line.split("llm failure ", 1)[1])}
        counts[(fields.get("source", "?"), fields.get("provider", "?"), fields.get("reason", "?"))] += 1
    return dict(counts)


def _show_key_health(
    console: Console,
    redis_url: str,
    batch: list[User],
    log_path: Path,
    failures: dict[tuple[str, str, str], int],
) -> None:
    """What key health made of the batch: each user's key_status, the hook's calls, the calls not made."""
    health = KeyHealth(redis_url, timeout=2.0)  # the web side: the worker's store and secret
    # A failure is recorded just after its task's result is stored, and the hook is called
    # off the task's path after that: waited for, up to a few seconds.
    expected = sum(count for (source, _, reason), count in failures.items() if source == "byok" and reason in TRACKED)
    deadline = time.monotonic() + 10
    while True:
        statuses = {user.uid: key_status(user.uid, health=health) for user in batch}
        recorded = sum(status.failures for found in statuses.values() for status in found.values())
        told = _TOLD.findall(log_path.read_text(errors="replace"))
        everyone_told = all(any(f"uid={uid!r}" in call for call in told) for uid, found in statuses.items() if found)
        if (recorded >= expected and everyone_told) or time.monotonic() > deadline:
            break
        time.sleep(0.2)

    table = Table(title="Key health, as key_status() answers the web side", title_justify="left")
    for column in ("user", "provider", "status", "failures", "breaker", "provider calls not made"):
        table.add_column(column)
    for user in batch:
        found = statuses[user.uid]
        if not found:
            table.add_row(user.uid, "-", "[green]nothing recorded[/]", "0", "closed", "0")
        for provider, status in found.items():
            colour = "green" if status.status == "ok" else "red"
            table.add_row(
                user.uid, provider, f"[{colour}]{status.status}[/]", str(status.failures), status.breaker,
                str(status.refused),
            )  # fmt: skip
    console.print(table)
    console.print("The user hook, called once per user, provider and reason across the fleet:")
    for call in told:
        console.print(f"  [bold]{call}[/]")
    saved = [(uid, status) for uid, found in statuses.items() for status in found.values() if status.refused]
    console.print(
        f"The breaker saved {sum(status.refused for _, status in saved)} provider calls"
        + (": " if saved else ".")
        + ", ".join(_saved(uid, status) for uid, status in saved)
        + "\n"
    )


def _saved(uid: str, status: KeyStatus) -> str:
    called = status.failures - status.refused
    return f"{uid}'s {status.provider} key was called {called} times for {status.failures} tasks"


def _view_from_log(failures: dict[tuple[str, str, str], int]) -> TriageView:
    return TriageView([Group(*key) for key in sorted(failures, key=lambda k: (k[0] != "platform", k))], 0)


def _check_keys(console: Console, broker_url: str, keys: list[str]) -> None:
    """Search the broker, every key and value, for the users' API keys."""
    store = redis.Redis.from_url(broker_url)
    found, scanned, sealed = 0, 0, 0
    for name in store.scan_iter(count=1000):
        scanned += 1
        sealed += name.startswith(b"byok:keys:")
        kind = store.type(name)
        values: list[Any]
        if kind == b"string":
            values = [store.get(name) or b""]
        elif kind == b"list":
            values = store.lrange(name, 0, -1)
        elif kind == b"hash":
            values = [pair for item in store.hgetall(name).items() for pair in item]
        elif kind == b"set":
            values = list(store.smembers(name))
        elif kind == b"zset":
            values = [entry[0] for entry in store.zrange(name, 0, -1, withscores=True)]
        else:
            values = []
        # The client answers bytes (no decode_responses); redis-py's types also allow str.
        blob = name + b"".join(value if isinstance(value, bytes) else str(value).encode() for value in values)
        found += sum(key.encode() in blob for key in keys)
    colour = "green" if found == 0 else "red"
    console.print(
        f"\n[{colour}]Searched {scanned} Redis keys and their values for the users' {len(keys)} API keys: "
        f"found {found}.[/] The keys crossed as {sealed} sealed blobs (AES-256-GCM, expiring within an hour); "
        "the messages carried only a reference."
    )


# Aligned rows, each short enough for an 80-column terminal: rich would wrap a longer
# row to the panel's left edge, out of its column.
SENTRY_SETUP = (
    "[bold]Alert rules[/]\n"
    "  page on-call:        [cyan]llm.source:platform[/]\n"
    "  notify the user:     [cyan]llm.source:byok llm.reason:invalid_key[/]\n"
    "                       (and quota, permission)\n"
    "[bold]Searches[/]\n"
    "  which users to tell: [cyan]llm.source:byok llm.reason:invalid_key[/],\n"
    "                       grouped by byok.uid"
)


def next_steps_panel(saved: bool) -> Panel:
    saved_note = (
        f"\n\nThe events are in {EVENTS_FILE}: [bold]byok-tasks triage {EVENTS_FILE}[/] prints this view again."
    )
    return Panel(SENTRY_SETUP + (saved_note + "." if saved else ""), title="Set up in Sentry", border_style="cyan")


def _next_steps(console: Console, saved: bool) -> None:
    console.print(next_steps_panel(saved))
