"""The one line a worker logs at start: what it accepts and where keys come from.

A deploy that lost its secret, or its key store, looks healthy until the first BYOK
task; this line makes it visible at start. It names settings, never a secret.
"""

from __future__ import annotations

from . import keys, report
from .header import HeaderCodec

__all__ = ["settings_line"]


def settings_line(codec: HeaderCodec) -> str:
    if not codec.secrets:
        signing = "headers unsigned (no BYOK_TASKS_SECRET): signed headers are accepted unchecked"
    elif codec.require_signature:
        signing = "headers signed (HMAC-SHA256), unsigned ones refused"
    else:
        signing = "headers signed (HMAC-SHA256), unsigned ones accepted"
    return (
        f"byok-tasks: {signing}; max age {codec.max_age:g} s; keys from {keys.describe_sources()}; "
        f"{report.describe_sink()}"
    )
