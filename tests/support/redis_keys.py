"""Keys a test leaves in the shared Redis, under a namespace of its own, and their removal."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import redis


def new_namespace(name: str) -> str:
    """A namespace for one module's keys: ``byok-test-<name>-<random>``."""
    return f"byok-test-{name}-{uuid.uuid4().hex[:8]}"


def delete_matching(client: redis.Redis, pattern: str) -> None:
    for name in client.scan_iter(match=pattern):
        client.delete(name)


@contextmanager
def removed_after(redis_url: str, pattern: str) -> Iterator[redis.Redis]:
    """A client of the shared Redis; every key matching ``pattern`` is removed when the block ends."""
    client = redis.Redis.from_url(redis_url)
    yield client
    delete_matching(client, pattern)
