"""KeyHealth refuses a setting that cannot work with KeyHealthError: a clear message, never a key in it."""

from __future__ import annotations

from typing import Any

import pytest

from byok_tasks import KeyHealth
from byok_tasks.health import KeyHealthError
from byok_tasks.testing.sandbox import sandbox_key

# Whatever goes wrong, neither the deployment's secret, the store's password nor a user's
# key given in the wrong place may reach the message (it is logged, and shown in tracebacks).
SECRET = "the-deployment-secret-" + "s" * 16
PASSWORD = "store-password-" + "p" * 12
URL = f"redis://:{PASSWORD}@127.0.0.1:6379/0"
USER_KEY = sandbox_key("openai", "ok")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"redis_url": ""}, "needs the URL of a Redis"),
        ({"redis_url": None}, "needs the URL of a Redis"),
        ({"redis_url": USER_KEY}, "redis_url must be a redis://, rediss:// or unix:// URL"),
        ({"redis_url": f"http://:{PASSWORD}@127.0.0.1/0"}, "redis_url must be a redis://, rediss:// or unix:// URL"),
        ({"redis_url": URL + "?socket_timeout=30"}, "with timeout=, not ['socket_timeout'] in its URL"),
        ({"redis_url": URL + "?retry_on_timeout=true"}, "with timeout=, not ['retry_on_timeout'] in its URL"),
        ({"notify": 42}, "notify must be a callable hook(notice) or the name of a Celery task / RQ job"),
        ({"notify": ""}, "notify must be a callable hook(notice) or the name"),
        ({"notify_queue": ""}, "notify_queue must be the name of an RQ queue"),
        ({"threshold": 0}, "threshold must be a whole number of failures, at least 1"),
        ({"threshold": 2.5}, "threshold must be a whole number of failures"),
        ({"threshold": True}, "threshold must be a whole number of failures"),
        ({"window": 0}, "window must be a number of seconds, 1 s to 366 days, not 0"),
        ({"window": float("nan")}, "window must be a number of seconds, 1 s to 366 days"),
        ({"threshold_window": 0.5}, "threshold_window must be a number of seconds, 1 s to 366 days"),
        ({"cooloff": 0}, "cooloff must be a number of seconds, 0.001 s to 366 days"),
        ({"cooloff": USER_KEY}, "cooloff must be a number of seconds, 0.001 s to 366 days, not a str"),
        ({"ttl": 10}, "ttl must be a number of seconds, 60 s to 366 days"),
        ({"timeout": 0}, "timeout must be a number of seconds, 0.001 s to 10 s, not 0"),
        ({"timeout": 30}, "timeout must be a number of seconds, 0.001 s to 10 s, not 30"),
        ({"timeout": None}, "timeout must be a number of seconds, 0.001 s to 10 s, not a NoneType"),
        ({"retry_interval": -1}, "retry_interval must be a number of seconds, 0 s to 3600 s"),
        ({"claim_ttl": 0}, "claim_ttl must be a number of seconds, 0.01 s to 1 day"),
        ({"probe_ttl": False}, "probe_ttl must be a number of seconds, 0.01 s to 1 day"),
        ({"cache_ttl": -0.5}, "cache_ttl must be a number of seconds, 0 s to 3600 s"),
        ({"prefix": ""}, "prefix must be a non-empty string"),
        ({"secret": "too-short"}, "the key-health secret must be at least 16 bytes"),
        ({"secret": b"\x00" * 8}, "the key-health secret must be at least 16 bytes"),
    ],
)
def test_a_bad_setting_raises_key_health_error_with_a_clear_message_and_no_secret(
    options: dict[str, Any], message: str
) -> None:
    given = {"redis_url": URL, "secret": SECRET, **options}
    url = given.pop("redis_url")
    with pytest.raises(KeyHealthError) as caught:
        KeyHealth(url, **given)
    text = str(caught.value)
    assert message in text
    for secret in (SECRET, PASSWORD, USER_KEY, "too-short"):
        assert secret not in text
    assert isinstance(caught.value, ValueError)  # a configuration error, as the rest of the library raises


def test_no_secret_anywhere_is_refused_naming_where_to_set_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BYOK_TASKS_SECRET", raising=False)
    monkeypatch.delenv("BYOK_TASKS_ENCRYPTION_KEY", raising=False)
    with pytest.raises(KeyHealthError, match="pass secret=, or set BYOK_TASKS_SECRET"):
        KeyHealth(URL)


def test_a_good_configuration_names_its_store_without_the_password() -> None:
    health = KeyHealth(URL, secret=SECRET, notify=lambda notice: None)
    assert health.location == "127.0.0.1:6379/0"
    assert PASSWORD not in repr(health) and SECRET not in repr(health)
