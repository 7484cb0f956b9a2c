"""The header codec: compact, versioned, signed when a secret is set, strict when told to be."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import time

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from byok_tasks import ByokContext
from byok_tasks.header import HeaderCodec, HeaderError

ALICE = ByokContext("user_2x8Kq9LmN3pRt7Vw", frozenset({"openai", "anthropic"}))


def test_round_trip_unsigned() -> None:
    codec = HeaderCodec()
    assert codec.decode(codec.encode(ALICE)) == ALICE


def test_round_trip_signed() -> None:
    codec = HeaderCodec.configure("s3cret")
    assert codec.decode(codec.encode(ALICE)) == ALICE


def test_typical_header_is_compact() -> None:
    assert len(HeaderCodec.configure("s3cret").encode(ALICE)) <= 200


def test_header_carries_no_more_than_uid_and_provider_names() -> None:
    header = HeaderCodec().encode(ALICE)
    assert header.startswith("1.")
    assert HeaderCodec().decode(header) == ALICE


def test_secret_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BYOK_TASKS_SECRET", "from-env")
    assert HeaderCodec.configure() == HeaderCodec.configure("from-env")


def test_rotated_secret_still_verifies_headers_signed_with_the_old_one() -> None:
    old = HeaderCodec.configure("old").encode(ALICE)
    assert HeaderCodec.configure(["new", "old"]).decode(old) == ALICE


def test_require_signature_without_secret_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BYOK_TASKS_SECRET", raising=False)
    with pytest.raises(ValueError, match="needs a secret"):
        HeaderCodec.configure(require_signature=True)


def test_empty_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="must not be empty"):
        HeaderCodec.configure(b"")


@pytest.mark.parametrize(
    "secret", ["s", "s" * 64, "s" * 65, "é-long-" * 40], ids=["short", "one block", "over a block", "long"]
)
def test_the_signature_is_the_standard_hmac_sha256_of_the_header(secret: str) -> None:
    # Publishers and workers of other versions, and anyone checking a header by hand, compute it with hmac.
    header = HeaderCodec.configure(secret).encode(ALICE)
    signed, _, signature = header.rpartition(".")
    expected = hmac.digest(secret.encode(), signed.encode(), hashlib.sha256)
    assert signature == base64.urlsafe_b64encode(expected).rstrip(b"=").decode()


def test_a_payload_written_with_spaces_is_read_as_json_is() -> None:
    # Our encoder writes compact JSON; a hand-made header (a test, a replay) may not.
    payload = json.dumps({"u": ALICE.uid, "p": sorted(ALICE.providers), "t": int(time.time())}, indent=1)
    header = "1." + base64.urlsafe_b64encode(payload.encode()).rstrip(b"=").decode()
    assert HeaderCodec().decode(header) == ALICE


def test_a_payload_with_anything_after_its_object_is_refused() -> None:
    payload = json.dumps({"u": ALICE.uid, "p": [], "t": int(time.time())}) + "{}"
    with pytest.raises(HeaderError, match="not base64-encoded JSON"):
        HeaderCodec().decode("1." + base64.urlsafe_b64encode(payload.encode()).rstrip(b"=").decode())


def test_signed_header_read_by_a_worker_without_secret_is_accepted_unverified() -> None:
    # A rolling deploy adds the secret to publishers first; workers must keep working.
    assert HeaderCodec().decode(HeaderCodec.configure("s3cret").encode(ALICE)) == ALICE


def test_unsigned_header_is_refused_when_signatures_are_required() -> None:
    with pytest.raises(HeaderError, match="unsigned"):
        HeaderCodec.configure("s3cret", require_signature=True).decode(HeaderCodec().encode(ALICE))


def test_flipping_any_character_of_a_signed_header_is_detected() -> None:
    codec = HeaderCodec.configure("s3cret")
    header = codec.encode(ALICE)
    for i in range(2, len(header)):
        if header[i] == ".":
            continue
        flipped = header[:i] + ("A" if header[i] != "A" else "B") + header[i + 1 :]
        try:
            decoded = codec.decode(flipped)
        except HeaderError:
            continue
        # base64 padding bits can absorb a flip of the last character without changing the bytes.
        assert decoded == ALICE


@given(st.one_of(st.text(max_size=300), st.binary(max_size=300), st.integers(), st.none(), st.lists(st.text())))
def test_decoding_anything_either_succeeds_or_raises_header_error(value: object) -> None:
    for codec in (HeaderCodec(), HeaderCodec.configure("s3cret", require_signature=True)):
        try:
            codec.decode(value)
        except HeaderError as exc:
            if isinstance(value, str) and len(value) >= 8:
                assert value not in str(exc)


@given(
    st.text(min_size=1, max_size=256).filter(lambda s: not any(ord(c) < 32 or ord(c) == 127 for c in s)),
    st.frozensets(st.from_regex(r"[a-z0-9][a-z0-9_.-]{0,31}", fullmatch=True), max_size=16),
)
def test_any_valid_context_round_trips(uid: str, providers: frozenset[str]) -> None:
    context = ByokContext(uid, providers)
    codec = HeaderCodec.configure("s3cret")
    assert codec.decode(codec.encode(context)) == context


@pytest.mark.parametrize(
    "value",
    [
        "1.abc.\u00e9",  # non-ASCII where the signature goes
        "1.\u00e9abc",  # non-ASCII where the payload goes
        "1." + base64.urlsafe_b64encode(json.dumps({"u": "x", "p": [], "t": 10**400}).encode()).decode(),
    ],
    ids=["non-ASCII signature", "non-ASCII payload", "issue time too large for a float"],
)
def test_odd_headers_are_refused_with_header_error_only(value: str) -> None:
    for codec in (HeaderCodec(), HeaderCodec.configure("s3cret", require_signature=True)):
        with pytest.raises(HeaderError):
            codec.decode(value)


def test_the_secret_never_shows_in_the_codecs_repr() -> None:
    assert "s3cret" not in repr(HeaderCodec.configure("s3cret"))


@given(
    st.sampled_from(["1.", "1.abc.", "1.eyJ1IjoieCJ9."]),
    st.text(max_size=60),
)
def test_anything_after_a_plausible_prefix_raises_header_error_at_most(prefix: str, rest: str) -> None:
    for codec in (HeaderCodec(), HeaderCodec.configure("s3cret", require_signature=True)):
        with contextlib.suppress(HeaderError):
            codec.decode(prefix + rest)


_NOW = 1_800_000_000
_DAY = 24 * 3600
_PROVIDER = st.from_regex(r"[a-z0-9][a-z0-9_.-]{0,31}", fullmatch=True)


@settings(max_examples=400)
@given(
    st.fixed_dictionaries(
        {
            # Mostly what the encoder writes, so that most examples take the one-match reading.
            "u": st.one_of(
                st.from_regex(r"[A-Za-z0-9_:@.-]{1,40}", fullmatch=True),
                st.sampled_from(["a" * 256, "a" * 257, "x\x7f", 'q"', "q\\", "\u00e9l\u00e8ve"]),
                st.text(max_size=300),
            ),
            "p": st.one_of(
                st.lists(_PROVIDER, max_size=4),
                st.lists(st.one_of(_PROVIDER, st.text(max_size=40), st.integers()), max_size=18),
            ),
            # Ages either side of max_age (7 days) and of the clock skew tolerated (5 minutes).
            "t": st.one_of(st.integers(_NOW - 10 * _DAY, _NOW + 3600), st.integers(0, 10**20)),
        },
        optional={
            "d": st.one_of(st.integers(0, 3 * _DAY), st.integers(0, 10**17), st.floats()),
            "k": st.one_of(st.from_regex(r"[A-Za-z0-9_-]{16,64}", fullmatch=True), st.text(max_size=70)),
        },
    )
)
@example({"u": "alice", "p": ["openai"], "t": _NOW - 8 * _DAY, "d": 2 * _DAY})  # in date only thanks to its delay
@example({"u": "alice", "p": ["openai"], "t": _NOW, "k": "r" * 16})  # sealed keys
@example({"u": "alice", "p": ["Open AI"], "t": _NOW, "k": "r"})  # two faults: refused for the first
@example({"u": "a" * 257, "p": [], "t": _NOW})
def test_a_payload_as_the_encoder_writes_it_reads_as_the_same_json_spaced_out(fields: dict[str, object]) -> None:
    # The codec reads the encoder's compact layout by one match, any other JSON field by field:
    # a payload must mean the same, and be refused for the same reason, either way.
    codec = HeaderCodec(clock=lambda: _NOW)

    def read(payload: str) -> object:
        try:
            context = codec.decode("1." + base64.urlsafe_b64encode(payload.encode()).rstrip(b"=").decode())
        except HeaderError as exc:
            return str(exc)
        return context.uid, context.providers, context.keyring and context.keyring.ref

    compact = json.dumps(fields, ensure_ascii=False, separators=(",", ":"))
    assert read(compact) == read(json.dumps(fields, ensure_ascii=False))
