"""A web request as a signed-in user brings it: who they are, and the keys they bring per provider."""

from __future__ import annotations


def as_user(uid: str, **keys: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {uid}", **{f"X-BYOK-{provider}": key for provider, key in keys.items()}}
