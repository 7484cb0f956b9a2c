"""Prometheus: LLM failures counted by whose key, which provider, why, and for which feature.

::

    import byok_tasks.prometheus

    byok_tasks.prometheus.instrument()
    byok_tasks.prometheus.start_http_server(9464)   # in the worker's main process

After :func:`instrument`, two counters:

- ``byok_llm_failures_total{source, provider, reason, feature}``: every classified failure
  (a task's final one, and each :func:`byok_tasks.report_llm_error`), the ones whose
  Sentry event storm control held back included;
- ``byok_llm_events_suppressed_total{source, provider, reason}``: the events storm control held back.

No user id is a label, and label values are bounded: providers byok-tasks has no table
for are ``other``, and so is every feature after the first :data:`MAX_FEATURES` this process has seen.

Celery's prefork pool and RQ's forking worker count in child processes, which a scrape of
the parent would never see: set ``PROMETHEUS_MULTIPROC_DIR`` to an empty directory (wiped
at each start) in the worker's environment, before anything imports ``prometheus_client``,
and :func:`start_http_server` serves what every process of the worker counted.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter
from prometheus_client import start_http_server as _start_http_server

from . import report
from .failure import LLMFailure
from .providers import PROVIDERS

__all__ = ["MAX_FEATURES", "OTHER", "instrument", "registry_for_scrape", "start_http_server", "uninstrument"]

MAX_FEATURES = 50
OTHER = "other"
_PROVIDERS = frozenset(table.name for table in PROVIDERS) | {"unknown"}
# A failure that names no feature, outside a task: labelled as Sentry's fingerprint does.
_NO_FEATURE = "unknown"
_MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


class _Metrics:
    def __init__(self, registry: CollectorRegistry | None, max_features: int) -> None:
        self.failures = Counter(
            "byok_llm_failures",
            "LLM failures classified by byok-tasks, by whose key (source), provider, reason and feature.",
            ("source", "provider", "reason", "feature"),
            registry=registry,
        )
        self.suppressed = Counter(
            "byok_llm_events_suppressed",
            "Error-tracker events of LLM failures that storm control held back (their failures are counted).",
            ("source", "provider", "reason"),
            registry=registry,
        )
        self.registry = registry
        self.max_features = max_features
        self._features: set[str] = set()
        self._lock = threading.Lock()

    def feature(self, name: str | None) -> str:
        if name is None:
            return _NO_FEATURE
        if name in self._features:
            return name
        with self._lock:
            if len(self._features) < self.max_features:
                self._features.add(name)
                return name
        return OTHER

    def on_failure(self, failure: LLMFailure, exc: BaseException) -> None:
        self.failures.labels(
            failure.source, _provider(failure.provider), failure.reason, self.feature(failure.feature)
        ).inc()

    def on_held_back(self, failure: LLMFailure) -> None:
        self.suppressed.labels(failure.source, _provider(failure.provider), failure.reason).inc()

    def unregister(self) -> None:
        if self.registry is not None:
            self.registry.unregister(self.failures)
            self.registry.unregister(self.suppressed)


def _provider(name: str) -> str:
    return name if name in _PROVIDERS else OTHER


_lock = threading.Lock()
_metrics: _Metrics | None = None
_settings: tuple[int, int] | None = None


def instrument(*, registry: CollectorRegistry | None = REGISTRY, max_features: int = MAX_FEATURES) -> None:
    """Count every classified failure, and every event storm control holds back, from now on.

    The counters go to ``registry`` (prometheus_client's default one unless told). Calling it
    again with the same settings changes nothing; other settings are an error (call
    :func:`uninstrument` first).
    """
    global _metrics, _settings
    if max_features < 0:
        raise ValueError("max_features must be 0 or more")
    settings = (id(registry), max_features)
    with _lock:
        if _settings is not None:
            if settings != _settings:
                raise ValueError(
                    "byok_tasks.prometheus.instrument() was already called in this process with other settings"
                )
            return
        metrics = _Metrics(registry, max_features)
        _metrics, _settings = metrics, settings
        report.add_failure_observer(metrics.on_failure)
        report.add_held_back_observer(metrics.on_held_back)


def uninstrument() -> None:
    """Undo :func:`instrument`, and take the counters out of their registry."""
    global _metrics, _settings
    with _lock:
        if _metrics is not None:
            report.remove_failure_observer(_metrics.on_failure)
            report.remove_held_back_observer(_metrics.on_held_back)
            _metrics.unregister()
        _metrics, _settings = None, None


def registry_for_scrape() -> CollectorRegistry:
    """What a scrape should read: with ``PROMETHEUS_MULTIPROC_DIR`` set, the sum of every
    process's counts in that directory (a registry of its own, as prometheus_client
    requires); else the default registry."""
    if not os.environ.get(_MULTIPROC_ENV):
        return REGISTRY
    from prometheus_client import multiprocess

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return registry


def start_http_server(port: int, addr: str = "0.0.0.0") -> Any:
    """Serve ``/metrics`` on ``port`` from a thread of this process (the worker's main process:
    prefork children and RQ work horses count through ``PROMETHEUS_MULTIPROC_DIR``)."""
    return _start_http_server(port, addr, registry=registry_for_scrape())
