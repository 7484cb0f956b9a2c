"""What a test knows of a user's key once it has travelled: its digest, as the test apps report it."""

from __future__ import annotations

import hashlib


def digest(key: str) -> str:
    """The SHA-256 of ``key``, in hex: what tests/apps/web_worker.py and rq_jobs.py answer for the key a task got."""
    return hashlib.sha256(key.encode()).hexdigest()
