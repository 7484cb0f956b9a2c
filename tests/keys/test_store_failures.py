"""A key store that is down, frozen or refuses us: ByokKeyUnavailable within the bound, in one process.

Each test runs its own redis-server (``own_redis``) and breaks it; the shared Redis is never touched.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from byok_tasks import ByokContext, ByokKeyUnavailable, byok_context, classify, current_key
from byok_tasks import settings as byok_settings
from byok_tasks.context import attach, detach
from byok_tasks.keys import Keyring, SealedKeyStore, generate_encryption_key
from byok_tasks.testing.sandbox import sandbox_key
from tests.support.redis_server import RedisServer, own_redis_fixture  # noqa: F401

ENCRYPTION_KEY = generate_encryption_key()
USER_KEY = sandbox_key("openai", "ok")
# The default bound: connect_timeout (1 s) + read_timeout (2 s).
BOUND = 3.0
# What a loaded CI box adds to the bound before an error comes out.
MARGIN = 1.0


def store_at(url: str, **options: float) -> SealedKeyStore:
    return SealedKeyStore(url, encryption_key=ENCRYPTION_KEY, **options)


def timed(call: Callable[[], object]) -> tuple[ByokKeyUnavailable, float]:
    """The ByokKeyUnavailable ``call`` raises, and how long it took to come."""
    started = time.monotonic()
    with pytest.raises(ByokKeyUnavailable) as caught:
        call()
    return caught.value, time.monotonic() - started


@pytest.fixture
def in_context_of_sealed_keys(own_redis: RedisServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[SealedKeyStore]:
    """A task's context whose keys are sealed in ``own_redis``, configured as the worker's store."""
    store = store_at(own_redis.url)
    monkeypatch.setattr(byok_settings.current(), "key_store", store)
    ref = store.seal({"openai": USER_KEY}, "alice")
    token = attach(ByokContext("alice", frozenset({"openai"}), Keyring(ref=ref)))
    yield store
    detach(token)


def test_sealing_with_the_store_down_raises_byok_key_unavailable_at_once(own_redis: RedisServer) -> None:
    store = store_at(own_redis.url)
    own_redis.kill()
    error, elapsed = timed(lambda: store.seal({"openai": USER_KEY}, "alice"))
    assert elapsed < BOUND + MARGIN
    assert isinstance(error.__cause__, redis.ConnectionError)
    assert (error.uid, error.provider) == ("alice", None)


def test_sealing_with_the_store_frozen_raises_within_the_default_timeouts(own_redis: RedisServer) -> None:
    store = store_at(own_redis.url)
    store.seal({"openai": USER_KEY}, "alice")  # a pooled connection, open before the freeze
    own_redis.freeze()
    error, elapsed = timed(lambda: store.seal({"openai": USER_KEY}, "alice"))
    assert 2.0 <= elapsed < BOUND + MARGIN  # the read timeout, once: no retries on top
    assert isinstance(error.__cause__, redis.TimeoutError)


def test_a_fresh_connection_to_a_frozen_store_gives_up_within_the_timeouts(own_redis: RedisServer) -> None:
    own_redis.freeze()
    store = store_at(own_redis.url, connect_timeout=0.5, read_timeout=0.5)
    error, elapsed = timed(lambda: store.seal({"openai": USER_KEY}, "alice"))
    assert elapsed < 1.0 + MARGIN
    assert isinstance(error.__cause__, redis.TimeoutError)


def test_current_key_with_the_store_down_raises_byok_key_unavailable_for_that_user_and_provider(
    own_redis: RedisServer, in_context_of_sealed_keys: SealedKeyStore
) -> None:
    own_redis.kill()
    error, elapsed = timed(lambda: current_key("openai"))
    assert elapsed < BOUND + MARGIN
    assert (error.uid, error.provider) == ("alice", "openai")
    assert isinstance(error.__cause__, redis.ConnectionError)


def test_current_key_with_the_store_frozen_raises_within_the_default_timeouts(
    own_redis: RedisServer, in_context_of_sealed_keys: SealedKeyStore
) -> None:
    own_redis.freeze()
    error, elapsed = timed(lambda: current_key("openai"))
    assert elapsed < BOUND + MARGIN
    assert isinstance(error.__cause__, redis.TimeoutError)


def test_store_failure_is_classified_as_the_users_key_unavailable(
    own_redis: RedisServer, in_context_of_sealed_keys: SealedKeyStore
) -> None:
    own_redis.kill()
    error, _ = timed(lambda: current_key("openai"))
    failure = classify(error)
    assert failure is not None
    assert (failure.source, failure.reason, failure.provider, failure.uid) == (
        "byok",
        "key_unavailable",
        "openai",
        "alice",
    )
    assert failure.retryable is False


def test_store_error_names_the_store_by_host_port_and_db_without_credentials(tmp_path: Path) -> None:
    with RedisServer(tmp_path, args=["--requirepass", "hunter2-not-the-password"]) as server:
        store = store_at(f"redis://byok:wrong-password@127.0.0.1:{server.port}/3")
        error, _ = timed(lambda: store.seal({"openai": USER_KEY}, "alice"))
    message = str(error)
    assert f"the key store at 127.0.0.1:{server.port}/3 failed" in message
    assert "wrong-password" not in message and "byok:" not in message and USER_KEY not in message
    assert isinstance(error.__cause__, redis.AuthenticationError)


def test_store_refusing_the_password_raises_byok_key_unavailable(tmp_path: Path) -> None:
    with RedisServer(tmp_path, args=["--requirepass", "the-real-password"]) as server:
        store = store_at(f"redis://:a-wrong-password@127.0.0.1:{server.port}/0")
        error, elapsed = timed(lambda: store.seal({"openai": USER_KEY}, "alice"))
    assert elapsed < BOUND + MARGIN
    assert isinstance(error.__cause__, redis.AuthenticationError)


@pytest.mark.parametrize("timeouts", [{"connect_timeout": 0}, {"read_timeout": -1}, {"read_timeout": float("nan")}])
def test_timeouts_must_be_positive(timeouts: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must be a number of seconds above 0"):
        store_at("redis://127.0.0.1:1/0", **timeouts)


@pytest.mark.parametrize("option", ["socket_timeout=30", "retry_on_timeout=true"])
def test_url_options_that_would_loosen_the_bound_are_refused(option: str) -> None:
    with pytest.raises(ValueError, match="connect_timeout= and read_timeout=, not"):
        store_at(f"redis://127.0.0.1:1/0?{option}")


def test_current_key_refuses_a_provider_name_no_context_can_hold() -> None:
    with byok_context("alice", ["openai"]), pytest.raises(ValueError, match="invalid provider name"):
        current_key("OpenAI")


def test_sealed_key_store_without_the_keys_extra_names_the_extra() -> None:
    # A fresh interpreter in which redis cannot be imported, as when the extra is not installed.
    code = (
        "import sys; sys.modules['redis'] = None\n"
        "from byok_tasks.keys import SealedKeyStore\n"
        "try:\n    SealedKeyStore('redis://127.0.0.1:1/0', encryption_key=b'k' * 32)\n"
        "except ImportError as exc:\n    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert 'pip install "byok-tasks[keys]"' in out
