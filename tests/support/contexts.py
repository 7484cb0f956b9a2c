"""Contexts a test sends many tasks under, to catch one leaking into the next."""

from __future__ import annotations

from typing import Any


def interleaved_expectations(count: int) -> list[list[Any] | None]:
    """What ``count`` tasks should each see: every other one no context, the rest users and providers in turn."""
    users = [f"user-{n}" for n in range(7)]
    providers = [["openai"], ["anthropic", "openai"], ["google"], []]
    return [None if i % 2 else [users[i % len(users)], providers[i % len(providers)]] for i in range(count)]
