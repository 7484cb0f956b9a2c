"""A loopback Sentry for the benchmarks: ``python -m benchmarks._collector``, driven by run.py.

It runs byok_tasks.testing's SentryCollector, in its own process so that the HTTP work of
receiving events never shares an interpreter with a measurement, and so that a "slow"
collector's answers to workers that are gone stay out of run.py's output.
``BYOK_BENCH_SENTRY_BEHAVIOUR`` is ``ok``, ``error``, ``rate_limited`` or ``slow`` (10 s).
"""

from __future__ import annotations

import os
from typing import Any

from benchmarks._child import serve
from byok_tasks.testing.sentry_collector import SentryCollector

collector = SentryCollector(slow_seconds=10.0)
collector.behaviour = os.environ.get("BYOK_BENCH_SENTRY_BEHAVIOUR", "ok")  # type: ignore[assignment]


def dsn() -> str:
    return collector.dsn


def received(settle: float = 0.0) -> dict[str, Any]:
    """What arrived since the last call, once nothing more has for ``settle`` seconds: request
    bodies (envelopes), events, and events ByokIntegration tagged."""
    if settle:
        collector.quiet_for(settle)
    events, envelopes = list(collector.events), len(collector.raw)
    collector.clear()  # a traced variant sends thousands of envelopes a round
    return {
        "envelopes": envelopes,
        "events": len(events),
        "tagged": sum("llm.reason" in str(event.get("tags")) for event in events),
    }


if __name__ == "__main__":
    serve({"dsn": dsn, "received": received})
