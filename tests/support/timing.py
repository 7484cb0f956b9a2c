"""How long the tests wait for what runs elsewhere: a worker's result, a server's answer."""

from __future__ import annotations

# A task's or request's result, on a shared and loaded machine.
TIMEOUT = 30
# A task retried with backoff: its waits add up.
RETRY_TIMEOUT = 60
