"""Key health in the tests: a namespace on the shared Redis, the users' keys there, what the hook saw.

The workers run tests/apps/health_worker.py; this process plays the web side: it sets a
user's key in the resolver's "database", reads key_status and clears it, as a settings page would.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis

from byok_tasks import KeyHealth
from byok_tasks.keys import ENCRYPTION_KEY_ENV
from byok_tasks.testing.sandbox import ProviderSandbox
from tests.support.celery_worker import SECRET
from tests.support.rq_worker import ENCRYPTION_KEY

TIMEOUT = 60.0


def wait_for(condition: Callable[[], Any], what: str, timeout: float = TIMEOUT) -> Any:
    """``condition()`` once it is truthy, polled; fails the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, f"still waiting after {timeout:g} s: {what}"
        time.sleep(0.05)
    return value


@dataclass
class HealthSpace:
    """One test's namespace: its keys, its hook's calls, its key-health records, its worker environment."""

    redis_url: str
    sandbox: ProviderSandbox
    options: dict[str, Any] = field(default_factory=dict)
    ns: str = field(default_factory=lambda: f"byok-test-health-{uuid.uuid4().hex[:8]}")

    def __post_init__(self) -> None:
        self.shared = redis.Redis.from_url(self.redis_url)

    def env(self, **extra: str) -> dict[str, str]:
        return {
            "BYOK_TEST_NS": self.ns,
            "OPENAI_BASE_URL": f"{self.sandbox.url}/v1",
            "BYOK_TEST_HEALTH": json.dumps(self.options),
            ENCRYPTION_KEY_ENV: ENCRYPTION_KEY,
            **extra,
        }

    def health(self, url: str | None = None) -> KeyHealth:
        """The web side's KeyHealth: the same store, prefix and secret as the workers'."""
        options = {name: value for name, value in self.options.items() if name != "timeout"}
        return KeyHealth(url or self.redis_url, prefix=f"{self.ns}:health:", secret=SECRET, timeout=2.0, **options)

    def set_key(self, uid: str, key: str, provider: str = "openai") -> None:
        self.shared.hset(f"{self.ns}:keys", f"{uid}:{provider}", key)

    def hook_calls(self) -> list[dict[str, Any]]:
        return [json.loads(item) for item in self.shared.lrange(f"{self.ns}:hook", 0, -1)]

    def hook_attempts(self) -> int:
        return int(self.shared.get(f"{self.ns}:hook-attempts") or 0)

    def floats(self, name: str) -> list[float]:
        return [float(item) for item in self.shared.lrange(f"{self.ns}:{name}", 0, -1)]

    def provider_calls(self, key: str) -> int:
        """Requests the provider sandbox received with ``key``."""
        return sum(
            1
            for request in list(self.sandbox.requests)
            if key in {name.lower(): value for name, value in request.headers.items()}.get("authorization", "")
        )

    def cleanup(self) -> None:
        for name in self.shared.scan_iter(match=f"{self.ns}*", count=1000):
            self.shared.delete(name)
