"""What run.py and the benchmark processes agree on, importable without Celery or an SDK."""

from __future__ import annotations

VARIANTS = {
    "bare": "bare Celery",
    "byok": "byok-tasks, unsigned",
    "byok-signed": "byok-tasks, signed",
    "sentry": "sentry-sdk Celery, errors only",
    "sentry-traced": "sentry-sdk Celery, traces 100%",
    "otel": "OpenTelemetry Celery",
}
SECRET = "benchmark-secret-not-a-key"
# A typical context: a 20-character user id, the user's own keys for two providers.
UID = "usr_2f9c81d4a7b3e6f0"
PROVIDERS = ("anthropic", "openai")
