"""Keys in tests: what a test knows of a key once it has travelled, and a store that acts once keys are sealed."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from typing import Any

from byok_tasks.keys import SealedKeyStore


def digest(key: str) -> str:
    """The SHA-256 of ``key``, in hex: what tests/apps/web_worker.py and rq_jobs.py answer for the key a task got."""
    return hashlib.sha256(key.encode()).hexdigest()


class SealedThen(SealedKeyStore):
    """A SealedKeyStore that calls ``then()`` as soon as each seal is written.

    Sealing comes before the message that carries the reference is sent, so what ``then``
    does to the store (break it, delete the keys) is done before any worker can open them,
    however loaded the machine: a countdown after publishing left that to a race, which a
    CI run lost.
    """

    def __init__(self, redis_url: str, *, then: Callable[[], object], **options: Any) -> None:
        super().__init__(redis_url, **options)
        self._then = then

    def seal(self, keys: Mapping[str, str], uid: str) -> str:
        ref = super().seal(keys, uid)
        self._then()
        return ref
