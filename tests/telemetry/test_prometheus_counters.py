"""byok_tasks.prometheus in one process: the real prometheus_client counters, read from a registry."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

import byok_tasks.prometheus
from byok_tasks import byok_context, report_llm_error
from byok_tasks.testing.sandbox import ProviderSandbox
from tests.support.ids import new_uid
from tests.telemetry.support import openai_failure


@pytest.fixture
def registry() -> Iterator[CollectorRegistry]:
    registry = CollectorRegistry()
    yield registry
    byok_tasks.prometheus.uninstrument()


def samples(registry: CollectorRegistry, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {
        tuple(sorted(sample.labels.items())): sample.value
        for metric in registry.collect()
        for sample in metric.samples
        if sample.name == name
    }


def failures(registry: CollectorRegistry) -> dict[tuple[tuple[str, str], ...], float]:
    return samples(registry, "byok_llm_failures_total")


def labels(**values: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(values.items()))


def test_failures_are_counted_by_source_provider_reason_and_feature(
    registry: CollectorRegistry, provider_sandbox: ProviderSandbox
) -> None:
    byok_tasks.prometheus.instrument(registry=registry)
    with byok_context(new_uid(), ["openai"]):
        for _ in range(2):
            report_llm_error(openai_failure(provider_sandbox.url, "invalid"), feature="digest")
    report_llm_error(openai_failure(provider_sandbox.url, "nocredit"), feature="digest")
    assert failures(registry) == {
        labels(source="byok", provider="openai", reason="invalid_key", feature="digest"): 2.0,
        labels(source="platform", provider="openai", reason="quota", feature="digest"): 1.0,
    }


def test_no_label_carries_the_user(registry: CollectorRegistry, provider_sandbox: ProviderSandbox) -> None:
    byok_tasks.prometheus.instrument(registry=registry)
    uid = new_uid()
    with byok_context(uid, ["openai"]):
        report_llm_error(openai_failure(provider_sandbox.url))
    exposed = [value for metric in registry.collect() for sample in metric.samples for value in sample.labels.values()]
    assert uid not in exposed
    assert {name for metric in registry.collect() for s in metric.samples for name in s.labels} == {
        "source",
        "provider",
        "reason",
        "feature",
    }


def test_provider_without_a_table_is_other(registry: CollectorRegistry, provider_sandbox: ProviderSandbox) -> None:
    byok_tasks.prometheus.instrument(registry=registry)
    report_llm_error(openai_failure(provider_sandbox.url), provider="acme-llm", feature="digest")
    [(key, _)] = failures(registry).items()
    assert dict(key)["provider"] == "other"


def test_features_beyond_the_cap_are_other(registry: CollectorRegistry, provider_sandbox: ProviderSandbox) -> None:
    byok_tasks.prometheus.instrument(registry=registry, max_features=2)
    for feature in ("a", "b", "c", "d", "a"):
        report_llm_error(openai_failure(provider_sandbox.url), feature=feature)
    assert {dict(key)["feature"]: value for key, value in failures(registry).items()} == {
        "a": 2.0,
        "b": 1.0,
        "other": 2.0,
    }


def test_failure_that_names_no_feature_is_unknown(
    registry: CollectorRegistry, provider_sandbox: ProviderSandbox
) -> None:
    byok_tasks.prometheus.instrument(registry=registry)
    report_llm_error(openai_failure(provider_sandbox.url))
    [(key, _)] = failures(registry).items()
    assert dict(key)["feature"] == "unknown"


def test_instrument_twice_counts_each_failure_once(
    registry: CollectorRegistry, provider_sandbox: ProviderSandbox
) -> None:
    byok_tasks.prometheus.instrument(registry=registry)
    byok_tasks.prometheus.instrument(registry=registry)
    report_llm_error(openai_failure(provider_sandbox.url))
    assert list(failures(registry).values()) == [1.0]


def test_instrument_again_with_another_registry_is_an_error(registry: CollectorRegistry) -> None:
    byok_tasks.prometheus.instrument(registry=registry)
    with pytest.raises(ValueError, match="other settings"):
        byok_tasks.prometheus.instrument(registry=CollectorRegistry())


def test_events_held_back_are_counted_and_their_failures_too(
    registry: CollectorRegistry, sentry: Any, provider_sandbox: ProviderSandbox
) -> None:
    byok_tasks.prometheus.instrument(registry=registry)
    with byok_context(new_uid(), ["openai"]):
        for _ in range(4):
            report_llm_error(openai_failure(provider_sandbox.url), feature="digest")
    assert samples(registry, "byok_llm_events_suppressed_total") == {
        labels(source="byok", provider="openai", reason="invalid_key"): 3.0
    }
    assert list(failures(registry).values()) == [4.0]
