"""Reading what a loopback Sentry collector received."""

from __future__ import annotations

import json
from typing import Any

from byok_tasks.testing.sentry_collector import SentryCollector

# Long enough for a worker's Sentry transport to deliver what it still holds.
QUIET = 1.0


def tags(event: dict[str, Any]) -> dict[str, Any]:
    """An event's tags as a dict (Sentry sends them as a dict or as [key, value] pairs)."""
    raw = event.get("tags") or {}
    return dict(raw) if isinstance(raw, dict) else {key: value for key, value in raw}


def _matches(event: dict[str, Any], uid: str | None, message: str | None) -> bool:
    if uid is not None and tags(event).get("byok.uid") != uid:
        return False
    return message is None or message in json.dumps(event.get("exception", {}))


def events_where(
    collector: SentryCollector, *, uid: str | None = None, message: str | None = None, expect: int, timeout: float = 30
) -> list[dict[str, Any]]:
    """The events for ``uid`` (or whose exception mentions ``message``), once ``expect`` have
    arrived and then nothing more for a while: so that a test also sees events it must not get."""
    collector.wait_until(lambda events: sum(_matches(e, uid, message) for e in events) >= expect, timeout)
    return [event for event in collector.quiet_for(QUIET) if _matches(event, uid, message)]


def strings_in(value: Any) -> list[str]:
    """Every string in a received event, keys included: where a secret could hide."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [text for key, item in value.items() for text in (*strings_in(key), *strings_in(item))]
    if isinstance(value, list):
        return [text for item in value for text in strings_in(item)]
    return []
