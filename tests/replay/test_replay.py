"""A signed header expires: its issue time and its task's delay are signed, and a copy outlives neither.

The codec's clock is the only thing replaced here: a header issued eight days ago is
made by a codec whose clock says so, exactly as a publisher eight days ago made it.
"""

from __future__ import annotations

import base64
import json
import time

import pytest
from celery import Celery

import byok_tasks.celery
from byok_tasks import ByokContext
from byok_tasks import keys as byok_keys
from byok_tasks import settings as byok_settings
from byok_tasks.header import CLOCK_SKEW, DEFAULT_MAX_AGE, HeaderCodec, HeaderError
from byok_tasks.keys import Keyring, SealedKeyStore, generate_encryption_key
from tests.support.headers import fields_of, with_fields

SECRET = "replay-test-secret"
ALICE = ByokContext("alice", frozenset({"openai"}))
NOW = 1_750_000_000.0
DAY = 86_400.0


def codec_at(when: float, *, max_age: float = DEFAULT_MAX_AGE) -> HeaderCodec:
    """A codec with the signing secret whose clock reads ``when``."""
    return HeaderCodec((SECRET.encode(),), max_age=max_age, clock=lambda: when)


def unsigned(fields: str) -> str:
    return "1." + base64.urlsafe_b64encode(fields.encode()).decode().rstrip("=")


def test_header_carries_the_time_it_was_issued() -> None:
    assert fields_of(codec_at(NOW).encode(ALICE))["t"] == int(NOW)


def test_header_is_valid_for_seven_days_by_default() -> None:
    header = codec_at(NOW).encode(ALICE)
    assert codec_at(NOW + 7 * DAY).decode(header) == ALICE


def test_header_issued_eight_days_ago_is_refused() -> None:
    header = codec_at(NOW - 8 * DAY).encode(ALICE)
    with pytest.raises(HeaderError) as caught:
        codec_at(NOW).decode(header)
    assert str(caught.value) == "header expired: issued 192.0 h ago, beyond its max_age of 168.0 h"


def test_clock_skew_is_tolerated_past_max_age_too() -> None:
    header = codec_at(NOW).encode(ALICE)
    assert codec_at(NOW + 7 * DAY + CLOCK_SKEW - 1).decode(header) == ALICE
    with pytest.raises(HeaderError, match="header expired"):
        codec_at(NOW + 7 * DAY + CLOCK_SKEW + 1).decode(header)


def test_max_age_is_configurable() -> None:
    header = codec_at(NOW).encode(ALICE)
    with pytest.raises(HeaderError, match=r"beyond its max_age of 1\.0 h"):
        codec_at(NOW + 3600 + CLOCK_SKEW + 1, max_age=3600).decode(header)


@pytest.mark.parametrize("max_age", [0, -1])
def test_max_age_must_be_positive(max_age: float) -> None:
    with pytest.raises(ValueError, match="max_age must be positive"):
        HeaderCodec.configure(SECRET, max_age=max_age)


def test_delayed_task_header_is_valid_for_max_age_plus_its_delay() -> None:
    header = codec_at(NOW).encode(ALICE, delay=2 * DAY)
    assert fields_of(header)["d"] == 2 * DAY + 1
    assert codec_at(NOW + 9 * DAY).decode(header) == ALICE
    with pytest.raises(HeaderError) as caught:
        codec_at(NOW + 9 * DAY + CLOCK_SKEW + 2).decode(header)
    assert (
        str(caught.value) == "header expired: issued 216.1 h ago, beyond its max_age of 168.0 h plus its 48.0 h delay"
    )


def test_header_without_a_delay_carries_none() -> None:
    assert "d" not in fields_of(codec_at(NOW).encode(ALICE))


def test_a_copied_header_cannot_claim_a_longer_delay() -> None:
    header = codec_at(NOW - 8 * DAY).encode(ALICE)
    with pytest.raises(HeaderError, match="signature does not match"):
        codec_at(NOW).decode(with_fields(header, d=30 * DAY))


def test_a_copied_header_cannot_claim_a_later_issue_time() -> None:
    header = codec_at(NOW - 8 * DAY).encode(ALICE)
    with pytest.raises(HeaderError, match="signature does not match"):
        codec_at(NOW).decode(with_fields(header, t=int(NOW)))


def test_header_from_two_minutes_ahead_is_accepted() -> None:
    assert codec_at(NOW).decode(codec_at(NOW + 120).encode(ALICE)) == ALICE


def test_header_from_ten_minutes_ahead_is_refused() -> None:
    with pytest.raises(HeaderError) as caught:
        codec_at(NOW).decode(codec_at(NOW + 600).encode(ALICE))
    assert str(caught.value) == (
        "header was issued 600 s in the future, beyond the 300 s tolerated between clocks: "
        "a clock is wrong, or the header was forged"
    )


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ('{"u": "alice", "p": []}', "no valid issue time"),
        ('{"u": "alice", "p": [], "t": "yesterday"}', "no valid issue time"),
        ('{"u": "alice", "p": [], "t": true}', "no valid issue time"),
        ('{"u": "alice", "p": [], "t": NaN}', "no valid issue time"),
        ('{"u": "alice", "p": [], "t": -Infinity}', "no valid issue time"),
        (f'{{"u": "alice", "p": [], "t": {int(NOW)}, "d": Infinity}}', "invalid scheduled delay"),
        (f'{{"u": "alice", "p": [], "t": {int(NOW)}, "d": -5}}', "invalid scheduled delay"),
        (f'{{"u": "alice", "p": [], "t": {int(NOW)}, "d": "2 days"}}', "invalid scheduled delay"),
    ],
)
def test_header_with_a_bad_time_or_delay_is_refused(fields: str, message: str) -> None:
    # Unsigned, to reach the payload checks: json accepts NaN and Infinity, and an
    # infinite delay would make a header valid forever.
    with pytest.raises(HeaderError, match=message):
        HeaderCodec(clock=lambda: NOW).decode(unsigned(fields))


def test_sealed_keys_reference_travels_in_the_header_and_nothing_else_of_the_keyring() -> None:
    keyring = Keyring({"openai": "sk-proj-not-in-any-header-0123456789"}, ref="R" * 22)
    header = codec_at(NOW).encode(ByokContext("alice", frozenset({"openai"}), keyring))
    assert fields_of(header) == {"u": "alice", "p": ["openai"], "t": int(NOW), "k": "R" * 22}
    decoded = codec_at(NOW).decode(header)
    assert decoded.keyring is not None and decoded.keyring.ref == "R" * 22
    assert len(header) <= 250


@pytest.mark.parametrize("ref", ["short", "R" * 65, "has spaces in it!!!!", 42])
def test_header_with_a_malformed_keys_reference_is_refused(ref: object) -> None:
    fields = json.dumps({"u": "alice", "p": ["openai"], "t": int(NOW), "k": ref})
    with pytest.raises(HeaderError, match="invalid sealed-keys reference"):
        HeaderCodec(clock=lambda: NOW).decode(unsigned(fields))


def test_real_clock_header_is_fresh() -> None:
    header = HeaderCodec.configure(SECRET).encode(ALICE)
    assert abs(float(fields_of(header)["t"]) - time.time()) <= 2  # type: ignore[arg-type]


def test_installing_again_with_another_max_age_is_refused_and_changes_nothing(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As if install() had already run in this process, with the default max_age.
    monkeypatch.setattr(byok_settings.current(), "codec", HeaderCodec.configure(SECRET))
    monkeypatch.setattr(byok_settings.current(), "key_store", None)
    store = SealedKeyStore(redis_url, encryption_key=generate_encryption_key())
    app = Celery("replay-test", set_as_current=False)
    with pytest.raises(ValueError, match="already called in this process with other settings"):
        byok_tasks.celery.install(app, secret=SECRET, max_age=3600, key_store=store)
    assert byok_keys.key_store() is None
