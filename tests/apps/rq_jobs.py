"""The RQ jobs the tests enqueue: each reports the BYOK context it sees.

What a job or callback saw is returned as the job's result, or written to Redis under
``byok-test-rq:<job id>:<what>`` where a callback has no result of its own.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import openai
from redis import Redis
from rq import Queue, get_current_job
from rq.job import Job

from byok_tasks import current_context, current_key, report_llm_error
from byok_tasks.rq import byok_required


def seen() -> list[Any] | None:
    """The context as a job sees it, in a form that survives RQ's result storage."""
    context = current_context()
    return None if context is None else [context.uid, sorted(context.providers)]


def record_key(job_id: str, what: str) -> str:
    return f"byok-test-rq:{job_id}:{what}"


def whoami() -> list[Any] | None:
    return seen()


@byok_required
def whoami_required() -> list[Any] | None:
    return seen()


def _attempt(marker: str) -> int:
    job = get_current_job()
    assert job is not None
    key = record_key(marker, "attempts")
    attempts = int(job.connection.incr(key))
    job.connection.expire(key, 600)
    return attempts


def fail_then_whoami(marker: str, failures: int) -> list[Any]:
    """Raises on the first ``failures`` runs (counted under ``marker``), then reports its context."""
    attempts = _attempt(marker)
    if attempts <= failures:
        raise ConnectionError(f"attempt {attempts}: the provider is briefly unreachable")
    return [seen(), attempts]


def spawn_whoami() -> str:
    """Enqueues ``whoami`` from inside a job, as application code does, and returns its id."""
    job = get_current_job()
    assert job is not None
    return Queue(job.origin, connection=job.connection).enqueue(whoami).id


def fail() -> None:
    raise RuntimeError("this job always fails")


def on_success_record(job: Job, connection: Redis, result: Any) -> None:
    connection.set(record_key(job.id, "on_success"), json.dumps(seen()), ex=600)


def on_failure_record(job: Job, connection: Redis, *exc_info: Any) -> None:
    connection.set(record_key(job.id, "on_failure"), json.dumps(seen()), ex=600)


def key_fingerprint(provider: str) -> str | None:
    """A digest of the key ``current_key`` hands the job: the result must not hold the key itself."""
    key = current_key(provider)
    return None if key is None else hashlib.sha256(key.encode()).hexdigest()


# The platform's own key, for jobs without a user's: the sandbox refuses it (byok_tasks/testing/sandbox.py).
PLATFORM_OPENAI_KEY = "sk-platform-0123456789abcdefghijklmnopqrstuvwxyz"


def summarize(base_url: str) -> str:
    """Calls the real OpenAI SDK with the user's key, else the platform's, as a product's job does."""
    client = openai.OpenAI(api_key=current_key("openai") or PLATFORM_OPENAI_KEY, base_url=base_url, max_retries=0)
    reply = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "summarize"}])
    return reply.choices[0].message.content or ""


def summarize_reported_then_raised(base_url: str) -> str:
    """Reports the failure itself (say, to tell the user), then lets the job fail with it."""
    try:
        return summarize(base_url)
    except openai.APIError as exc:
        report_llm_error(exc, feature="summary")
        raise


def summarize_after_failures(base_url: str, marker: str, failures: int) -> str:
    """Calls OpenAI (and fails with the user's invalid key) on the first ``failures`` runs, then succeeds without it."""
    if _attempt(marker) <= failures:
        return summarize(base_url)
    return "done without the provider"
