"""byok_tasks.prometheus scraped by a real Prometheus server from a real prefork Celery worker.

The worker's two children count into a multiprocess directory; its main process serves
the sum. Prometheus (Debian's package, started here on loopback) scrapes it every second
and evaluates the repository's alert rules (deploy/prometheus/byok-alerts.yml) with
thresholds and `for:` durations made short for the test. Tasks call the real OpenAI SDK
against the loopback sandbox, and report to Sentry (a loopback collector) through storm control.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from byok_tasks import byok_context
from byok_tasks.testing.sandbox import ProviderSandbox
from byok_tasks.testing.sentry_collector import SentryCollector
from tests.support.ids import new_uid
from tests.support.ports import free_port
from tests.support.processes import ROOT
from tests.support.prometheus_server import PrometheusServer
from tests.support.sentry import events_where
from tests.support.timing import TIMEOUT

RULES = ROOT / "deploy" / "prometheus" / "byok-alerts.yml"
PAGE = "LLMPlatformKeyFailures"
TICKET = "LLMUserKeyFailuresSurge"


def rules_for_the_test(directory: Path) -> Path:
    """The repository's rules, alerting at more than 1 failure per minute after 1 s."""
    rules = yaml.safe_load(RULES.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            if "alert" in rule:
                rule["expr"] = re.sub(r">\s*[\d.]+\s*$", "> 1", rule["expr"].strip())
                rule["for"] = "1s"
    path = directory / "byok-alerts.yml"
    path.write_text(yaml.safe_dump(rules))
    return path


@pytest.fixture(scope="module")
def stack(
    worker_factory: Any,
    redis_url: str,
    provider_sandbox: ProviderSandbox,
    sentry_collector: SentryCollector,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Any, PrometheusServer]]:
    directory = tmp_path_factory.mktemp("prometheus")
    multiprocess = directory / "multiproc"
    multiprocess.mkdir()
    port = free_port()
    worker = worker_factory(
        redis_url,
        "prefork",
        app_module="tests.apps.metrics_worker",
        env={
            "PROMETHEUS_MULTIPROC_DIR": str(multiprocess),
            "BYOK_TEST_METRICS_PORT": str(port),
            "OPENAI_BASE_URL": f"{provider_sandbox.url}/v1",
            "SENTRY_DSN": sentry_collector.dsn,
        },
    )
    with PrometheusServer(directory, [f"127.0.0.1:{port}"], [rules_for_the_test(directory)]) as prometheus:
        until(prometheus.targets_up, "Prometheus scraped the worker")
        yield worker, prometheus


def until(condition: Callable[[], Any], what: str, timeout: float = TIMEOUT) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.2)
    return value


def fail_tasks(worker: Any, count: int, scenario: str, uid: str, providers: list[str]) -> None:
    with byok_context(uid, providers):
        results = [worker.app.send_task("llm.summarize", (scenario,)) for _ in range(count)]
    for result in results:
        result.get(timeout=TIMEOUT, propagate=False)


def failures(prometheus: PrometheusServer, source: str, reason: str) -> float:
    return sum(prometheus.query(f'byok_llm_failures_total{{source="{source}", reason="{reason}"}}').values())


def send_in_two_batches(worker: Any, prometheus: PrometheusServer, source: str, reason: str, **task: Any) -> None:
    # A series Prometheus first sees at 1 shows no increase: the first failure makes it, the rest count.
    fail_tasks(worker, 1, **task)
    until(lambda: failures(prometheus, source, reason) >= 1, f"Prometheus saw the first {source} failure")
    fail_tasks(worker, 5, **task)


def firing(prometheus: PrometheusServer, alertname: str) -> list[dict[str, Any]]:
    return [a for a in prometheus.alerts() if a["labels"]["alertname"] == alertname and a["state"] == "firing"]


def test_rules_file_is_valid_for_promtool() -> None:
    import subprocess

    done = subprocess.run(["promtool", "check", "rules", str(RULES)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_byok_failures_are_counted_and_never_page(stack: tuple[Any, PrometheusServer]) -> None:
    worker, prometheus = stack
    send_in_two_batches(
        worker, prometheus, "byok", "invalid_key", scenario="invalid", uid=new_uid(), providers=["openai"]
    )
    until(lambda: failures(prometheus, "byok", "invalid_key") == 6, "Prometheus counted 6 BYOK failures")
    query = 'sum by (source, provider, reason, feature) (byok_llm_failures_total{reason="invalid_key"})'
    assert prometheus.query(query) == {
        (("feature", "llm.summarize"), ("provider", "openai"), ("reason", "invalid_key"), ("source", "byok")): 6.0
    }
    # The rules were evaluated over these failures: the ticket fires, nothing pages.
    [ticket] = until(lambda: firing(prometheus, TICKET), "the BYOK ticket alert fired")
    assert ticket["labels"]["severity"] == "ticket"
    assert [a for a in prometheus.alerts() if a["labels"].get("severity") == "page"] == []


def test_events_storm_control_held_back_are_counted(
    stack: tuple[Any, PrometheusServer], sentry_collector: SentryCollector
) -> None:
    worker, prometheus = stack
    uid = new_uid()
    # Rate limits: a reason no other test here sends, so that these counts are this test's own.
    fail_tasks(worker, 4, scenario="ratelimited", uid=uid, providers=["openai"])
    # Each of the two children sends its first event for this user and holds back the rest.
    sent = len(events_where(sentry_collector, uid=uid, expect=1))
    until(
        lambda: prometheus.query('byok_llm_failures_total{reason="rate_limit"}'),
        "Prometheus counted the rate-limit failures",
    )
    assert sum(prometheus.query('byok_llm_failures_total{reason="rate_limit"}').values()) == 4
    assert prometheus.query('byok_llm_events_suppressed_total{reason="rate_limit"}') == {
        (("provider", "openai"), ("reason", "rate_limit"), ("source", "byok")): 4.0 - sent
    }


def test_platform_failures_are_counted_and_page(stack: tuple[Any, PrometheusServer]) -> None:
    worker, prometheus = stack
    send_in_two_batches(
        worker, prometheus, "platform", "quota", scenario="nocredit", uid=new_uid(), providers=["anthropic"]
    )
    until(lambda: failures(prometheus, "platform", "quota") == 6, "Prometheus counted 6 platform failures")
    assert prometheus.query("sum by (source) (byok_llm_failures_total)")[(("source", "platform"),)] == 6
    [page] = until(lambda: firing(prometheus, PAGE), "the platform alert fired")
    assert (page["labels"]["severity"], page["labels"]["provider"], page["labels"]["reason"]) == (
        "page",
        "openai",
        "quota",
    )
