"""The failure path of one failed task: ``python -m benchmarks._failure_path``, driven by run.py.

One real failure: the OpenAI SDK's AuthenticationError from the loopback provider sandbox
(``OPENAI_BASE_URL``), raised once under a BYOK context and ``llm_call``. It is then
captured the way sentry-sdk's Celery integration captures a task's failure
(``event_from_exception`` with the ``celery`` mechanism, then ``capture_event``), sending
to ``SENTRY_DSN``. ``BYOK_BENCH_VARIANT`` is ``byok`` (with ByokIntegration: classify,
enrich, scrub) or ``plain`` (sentry-sdk alone). Commands:

- ``classify(number)``: seconds for ``number`` calls of ``byok_tasks.classify`` on the failure;
- ``capture(events)``: capture it ``events`` times, then flush; wall seconds in the capturing
  thread, wall seconds until delivered, and CPU seconds of the process (sending thread included).
"""

from __future__ import annotations

import os
import time
import timeit
from typing import Any

import openai
import sentry_sdk
from sentry_sdk.integrations.dedupe import DedupeIntegration
from sentry_sdk.utils import event_from_exception

from benchmarks._child import serve
from benchmarks._shared import UID
from byok_tasks import byok_context, classify, llm_call
from byok_tasks.sentry import ByokIntegration
from byok_tasks.testing.sandbox import sandbox_key

VARIANT = os.environ["BYOK_BENCH_VARIANT"]
# Every capture must be sent, as a failure is sent the first time: storm control would hold
# back repeats of one user's failure, and Dedupe repeats of one exception object.
sentry_sdk.init(
    dsn=os.environ["SENTRY_DSN"],
    integrations=[ByokIntegration(storm_budget=1_000_000_000)] if VARIANT == "byok" else [],
    disabled_integrations=[DedupeIntegration()],
)


def _raise_failure() -> BaseException:
    client = openai.OpenAI(
        api_key=sandbox_key("openai", "invalid"), base_url=os.environ["OPENAI_BASE_URL"], max_retries=0
    )
    try:
        with byok_context(UID, ["openai"]), llm_call("openai", model="gpt-4o-mini"):
            client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Summarise."}])
    except openai.AuthenticationError as exc:
        return exc
    raise SystemExit("the sandbox was expected to refuse the key")


FAILURE = _raise_failure()


def _capture_task_failure() -> None:
    client = sentry_sdk.get_client()
    event, hint = event_from_exception(
        FAILURE, client_options=client.options, mechanism={"type": "celery", "handled": False}
    )
    sentry_sdk.capture_event(event, hint=hint)


def classify_seconds(number: int) -> float:
    assert classify(FAILURE) is not None
    return timeit.timeit(lambda: classify(FAILURE), number=number)


def capture(events: int) -> dict[str, Any]:
    started_wall, started_cpu = time.perf_counter(), time.process_time()
    for _ in range(events):
        _capture_task_failure()
    captured = time.perf_counter()
    sentry_sdk.flush(timeout=30)
    return {
        "thread": captured - started_wall,
        "delivered": time.perf_counter() - started_wall,
        "cpu": time.process_time() - started_cpu,
    }


if __name__ == "__main__":
    serve({"classify": classify_seconds, "capture": capture})
