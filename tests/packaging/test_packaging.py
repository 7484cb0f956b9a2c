"""The core imports no framework: an application pays only for the integrations it uses."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

FRAMEWORKS = {
    "celery", "kombu", "rq", "dramatiq", "redis", "sentry_sdk", "langchain_core", "cryptography", "openai", "anthropic",
    "httpx", "httpx2", "requests", "aiohttp", "botocore", "starlette", "flask", "fakeredis", "rich",
    "opentelemetry", "prometheus_client",
}  # fmt: skip


def imported_by(statement: str) -> set[str]:
    code = f"import sys, json; {statement}; print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}})))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(json.loads(done.stdout))


def test_the_core_imports_no_framework() -> None:
    assert imported_by("import byok_tasks") & FRAMEWORKS == set()


@pytest.mark.parametrize(
    ("module", "framework"),
    [
        ("byok_tasks.celery", "from celery import Celery, Task, signals"),
        ("byok_tasks.rq", "import rq.job, rq.queue, rq.worker"),
        ("byok_tasks.dramatiq", "import dramatiq, dramatiq.middleware"),
        ("byok_tasks.sentry", "import sentry_sdk.integrations.dedupe, sentry_sdk.integrations.logging"),
        ("byok_tasks.otel", "import opentelemetry.trace"),
        ("byok_tasks.prometheus", "import prometheus_client"),
    ],
)
def test_each_adapter_imports_only_its_own_framework(module: str, framework: str) -> None:
    # What the framework itself imports is its business: Celery brings kombu, RQ brings
    # redis, which brings cryptography.
    own = imported_by(framework)
    assert imported_by(f"import {module}") & FRAMEWORKS - own == set()
