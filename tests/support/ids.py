"""Names a test makes up so that what it leaves (events, log lines) is told from what others leave."""

from __future__ import annotations

import uuid


def new_uid(prefix: str = "user") -> str:
    """A user id of this test's own."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"
