"""current_key, the resolver cache and sealed keys, in one process against the real Redis."""

from __future__ import annotations

import base64
import pickle
import time
from collections.abc import Callable, Iterator

import pytest
import redis

from byok_tasks import ByokContext, ByokKeyExpired, ByokKeyUnavailable, byok_context, current_key
from byok_tasks import keys as byok_keys
from byok_tasks import settings as byok_settings
from byok_tasks.context import attach, detach
from byok_tasks.keyring import is_reference
from byok_tasks.keys import ENCRYPTION_KEY_ENV, Keyring, SealedKeyStore, generate_encryption_key
from byok_tasks.testing.sandbox import sandbox_key
from tests.support.redis_keys import new_namespace, removed_after

NAMESPACE = new_namespace("keys-unit")
ENCRYPTION_KEY = generate_encryption_key()


@pytest.fixture(autouse=True)
def shared_redis(redis_url: str) -> Iterator[redis.Redis]:
    """The shared Redis; every key a test leaves under NAMESPACE is removed after it."""
    with removed_after(redis_url, f"{NAMESPACE}:*") as client:
        yield client


@pytest.fixture
def store(redis_url: str, shared_redis: redis.Redis) -> SealedKeyStore:
    return SealedKeyStore(redis_url, encryption_key=ENCRYPTION_KEY, prefix=f"{NAMESPACE}:sealed:")


@pytest.fixture
def configured(store: SealedKeyStore, monkeypatch: pytest.MonkeyPatch) -> SealedKeyStore:
    """``store`` configured as this process's SealedKeyStore, for this test only."""
    monkeypatch.setattr(byok_settings.current(), "key_store", None)
    byok_keys.configure(store=store)
    return store


class Vault:
    """An application's key store, as a resolver sees it: it counts what it is asked."""

    def __init__(self, keys: dict[tuple[str, str], object]) -> None:
        self.keys = keys
        self.calls: list[tuple[str, str]] = []

    def resolve(self, uid: str, provider: str) -> str | None:
        self.calls.append((uid, provider))
        return self.keys.get((uid, provider))  # type: ignore[return-value]


UseResolver = Callable[..., Vault]


@pytest.fixture
def use_resolver(monkeypatch: pytest.MonkeyPatch) -> UseResolver:
    monkeypatch.setattr(byok_settings.current(), "resolver", None)

    def configure(vault: Vault, *, ttl: float = 60.0, size: int = 1024) -> Vault:
        byok_keys.configure(resolver=vault.resolve, resolver_ttl=ttl, resolver_cache_size=size)
        return vault

    return configure


# current_key in the web process


def test_no_key_outside_a_byok_context() -> None:
    assert current_key("openai") is None


def test_no_key_for_a_provider_the_context_does_not_make_byok() -> None:
    with byok_context("alice", keys={"openai": sandbox_key("openai", "ok")}):
        assert current_key("anthropic") is None


def test_keys_given_with_the_request_are_the_current_keys() -> None:
    openai_key, anthropic_key = sandbox_key("openai", "ok"), sandbox_key("anthropic", "ok")
    with byok_context("alice", keys={"openai": openai_key, "anthropic": anthropic_key}) as context:
        assert (current_key("openai"), current_key("anthropic")) == (openai_key, anthropic_key)
        assert context.providers == {"openai", "anthropic"}


def test_byok_provider_without_any_key_is_an_error_not_the_platform_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(byok_settings.current(), "resolver", None)
    with byok_context("alice", ["openai"]), pytest.raises(ByokKeyUnavailable) as caught:
        current_key("openai")
    assert str(caught.value) == (
        "user 'alice' uses their own openai key, but it cannot be found: "
        "the context carries no keys and no resolver is configured"
    )


@pytest.mark.parametrize("key", ["", None, b"sk-bytes-key-0123456789"])
def test_an_empty_or_non_string_key_is_refused_where_it_is_given(key: object) -> None:
    # An empty key would make `current_key(p) or PLATFORM_KEY` quietly spend the platform's key.
    with pytest.raises(ValueError, match="the openai key must be a non-empty string") as caught:
        byok_context("alice", keys={"openai": key}).__enter__()  # type: ignore[dict-item]
    assert "sk-bytes" not in str(caught.value)


def test_keys_mapped_the_wrong_way_round_are_refused_without_being_shown() -> None:
    key = sandbox_key("openai", "ok")
    with pytest.raises(ValueError, match="keys must map provider names") as caught:
        byok_context("alice", keys={key: "openai"}).__enter__()
    assert key not in str(caught.value) and key[-24:] not in str(caught.value)


# The resolver


def test_resolver_is_asked_only_when_a_task_asks_for_a_key(use_resolver: UseResolver) -> None:
    vault = use_resolver(Vault({("bob", "openai"): "sk-bob-openai-0123456789abcdef"}))
    with byok_context("bob", ["openai"]):
        assert vault.calls == []
        assert current_key("openai") == "sk-bob-openai-0123456789abcdef"
    assert vault.calls == [("bob", "openai")]


def test_resolved_key_is_cached_for_its_ttl(use_resolver: UseResolver) -> None:
    vault = use_resolver(Vault({("bob", "openai"): "sk-bob-openai-0123456789abcdef"}), ttl=0.3)
    with byok_context("bob", ["openai"]):
        for _ in range(5):
            current_key("openai")
        assert len(vault.calls) == 1
        time.sleep(0.4)
        current_key("openai")
    assert len(vault.calls) == 2


def test_resolver_cache_keeps_the_most_recently_used_keys_within_its_size(use_resolver: UseResolver) -> None:
    users = ["u1", "u2", "u3"]
    vault = use_resolver(Vault({(uid, "openai"): f"sk-{uid}-openai-0123456789abcdef" for uid in users}), size=2)
    for uid in ["u1", "u2", "u1", "u3", "u1", "u2"]:
        with byok_context(uid, ["openai"]):
            current_key("openai")
    # u3 pushed out u2 (u1 was used more recently); u2 is then asked again.
    assert vault.calls == [("u1", "openai"), ("u2", "openai"), ("u3", "openai"), ("u2", "openai")]


def test_cache_is_per_user_and_provider(use_resolver: UseResolver) -> None:
    use_resolver(
        Vault({("bob", "openai"): "sk-bob-openai-0123456789abcdef", ("eve", "openai"): "sk-eve-openai-0123456789abc"})
    )
    with byok_context("bob", ["openai"]):
        assert current_key("openai") == "sk-bob-openai-0123456789abcdef"
    with byok_context("eve", ["openai"]):
        assert current_key("openai") == "sk-eve-openai-0123456789abc"


@pytest.mark.parametrize("answer", [None, ""])
def test_resolver_without_the_key_is_an_error_and_is_asked_again_next_time(
    use_resolver: UseResolver, answer: str | None
) -> None:
    vault = use_resolver(Vault({("bob", "openai"): answer}))
    with byok_context("bob", ["openai"]):
        for _ in range(2):
            with pytest.raises(ByokKeyUnavailable, match="the context carries no keys and the resolver returned none"):
                current_key("openai")
    assert len(vault.calls) == 2


def test_resolver_returning_a_non_string_is_a_type_error_that_does_not_show_it(use_resolver: UseResolver) -> None:
    use_resolver(Vault({("bob", "openai"): b"sk-bob-bytes-0123456789abcdef"}))
    with byok_context("bob", ["openai"]), pytest.raises(TypeError, match="returned a bytes for openai") as caught:
        current_key("openai")
    assert "sk-bob" not in str(caught.value)


def test_keys_given_with_the_request_come_before_the_resolver(use_resolver: UseResolver) -> None:
    vault = use_resolver(Vault({("bob", "openai"): "sk-bob-stored-0123456789abcdef"}))
    with byok_context("bob", keys={"openai": "sk-bob-given-0123456789abcdef"}):
        assert current_key("openai") == "sk-bob-given-0123456789abcdef"
    assert vault.calls == []


def test_a_redis_url_given_as_the_key_store_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(byok_settings.current(), "key_store", None)
    with pytest.raises(
        TypeError, match=r"key_store must be a SealedKeyStore, such as SealedKeyStore\(redis_url\), not a str"
    ):
        byok_keys.configure(store="redis://127.0.0.1:6379/0")  # type: ignore[arg-type]
    assert byok_keys.key_store() is None


def test_a_resolver_that_is_not_a_function_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(byok_settings.current(), "resolver", None)
    with pytest.raises(TypeError, match="resolver must be a function"):
        byok_keys.configure(resolver={"bob": "sk-bob"})  # type: ignore[arg-type]


@pytest.mark.parametrize(("ttl", "size"), [(-1.0, 10), (60.0, -1)])
def test_negative_resolver_cache_settings_are_refused(ttl: float, size: int, use_resolver: UseResolver) -> None:
    with pytest.raises(ValueError, match="must not be negative"):
        use_resolver(Vault({}), ttl=ttl, size=size)


# Sealed keys


def test_sealed_keys_open_for_the_same_user(store: SealedKeyStore) -> None:
    keys = {"openai": sandbox_key("openai", "ok"), "anthropic": sandbox_key("anthropic", "ok")}
    assert store.open(store.seal(keys, "alice"), "alice") == keys


def test_redis_holds_only_ciphertext_under_a_random_reference(store: SealedKeyStore, shared_redis: redis.Redis) -> None:
    key = sandbox_key("openai", "ok")
    ref = store.seal({"openai": key}, "alice")
    stored = shared_redis.get(f"{NAMESPACE}:sealed:{ref}")
    assert stored is not None and len(stored) > len(key)
    for visible in (key, key[-24:], "openai", "alice"):
        assert visible.encode() not in stored
    assert "alice" not in ref and is_reference(ref)


def test_sealed_keys_expire_with_the_stores_ttl(redis_url: str, shared_redis: redis.Redis) -> None:
    store = SealedKeyStore(redis_url, encryption_key=ENCRYPTION_KEY, ttl=90, prefix=f"{NAMESPACE}:sealed:")
    ref = store.seal({"openai": sandbox_key("openai", "ok")}, "alice")
    assert 85_000 < shared_redis.pttl(f"{NAMESPACE}:sealed:{ref}") <= 90_000


def test_expired_sealed_keys_are_byok_key_expired(redis_url: str, shared_redis: redis.Redis) -> None:
    store = SealedKeyStore(redis_url, encryption_key=ENCRYPTION_KEY, ttl=0.2, prefix=f"{NAMESPACE}:sealed:")
    ref = store.seal({"openai": sandbox_key("openai", "ok")}, "alice")
    time.sleep(0.3)
    with pytest.raises(ByokKeyExpired) as caught:
        store.open(ref, "alice")
    assert str(caught.value) == (
        f"the keys sealed for user 'alice' under reference {ref!r} are gone: they outlived the TTL they were "
        "sealed with, or were never stored; send the task again with the user's key"
    )


def test_sealed_keys_do_not_open_for_another_user(store: SealedKeyStore) -> None:
    key = sandbox_key("openai", "ok")
    ref = store.seal({"openai": key}, "alice")
    with pytest.raises(ByokKeyUnavailable, match="do not open for user 'mallory'") as caught:
        store.open(ref, "mallory")
    assert type(caught.value) is ByokKeyUnavailable and key not in str(caught.value)


def test_sealed_keys_do_not_open_under_another_reference(store: SealedKeyStore, shared_redis: redis.Redis) -> None:
    ref = store.seal({"openai": sandbox_key("openai", "ok")}, "alice")
    other = "x" * 22
    shared_redis.copy(f"{NAMESPACE}:sealed:{ref}", f"{NAMESPACE}:sealed:{other}")
    with pytest.raises(ByokKeyUnavailable, match="do not open"):
        store.open(other, "alice")


def test_sealed_keys_do_not_open_with_another_encryption_key(redis_url: str, store: SealedKeyStore) -> None:
    ref = store.seal({"openai": sandbox_key("openai", "ok")}, "alice")
    other_key = generate_encryption_key()
    elsewhere = SealedKeyStore(redis_url, encryption_key=other_key, prefix=f"{NAMESPACE}:sealed:")
    with pytest.raises(ByokKeyUnavailable, match="a different encryption key") as caught:
        elsewhere.open(ref, "alice")
    assert ENCRYPTION_KEY not in str(caught.value) and other_key not in str(caught.value)


def test_tampered_ciphertext_does_not_open(store: SealedKeyStore, shared_redis: redis.Redis) -> None:
    ref = store.seal({"openai": sandbox_key("openai", "ok")}, "alice")
    name = f"{NAMESPACE}:sealed:{ref}"
    blob = bytearray(shared_redis.get(name) or b"")
    blob[-1] ^= 1
    shared_redis.set(name, bytes(blob))
    with pytest.raises(ByokKeyUnavailable, match="do not open"):
        store.open(ref, "alice")


def test_rotated_encryption_key_still_opens_keys_sealed_with_the_old_one(redis_url: str, store: SealedKeyStore) -> None:
    keys = {"openai": sandbox_key("openai", "ok")}
    ref = store.seal(keys, "alice")
    rotated = SealedKeyStore(
        redis_url, encryption_key=[generate_encryption_key(), ENCRYPTION_KEY], prefix=f"{NAMESPACE}:sealed:"
    )
    assert rotated.open(ref, "alice") == keys


def test_rotated_encryption_key_seals_with_the_new_one(redis_url: str, store: SealedKeyStore) -> None:
    rotated = SealedKeyStore(
        redis_url, encryption_key=[generate_encryption_key(), ENCRYPTION_KEY], prefix=f"{NAMESPACE}:sealed:"
    )
    ref = rotated.seal({"openai": sandbox_key("openai", "ok")}, "alice")
    with pytest.raises(ByokKeyUnavailable, match="a different encryption key"):
        store.open(ref, "alice")


def test_encryption_key_comes_from_the_environment(
    redis_url: str, monkeypatch: pytest.MonkeyPatch, shared_redis: redis.Redis
) -> None:
    monkeypatch.setenv(ENCRYPTION_KEY_ENV, ENCRYPTION_KEY)
    from_env = SealedKeyStore(redis_url, prefix=f"{NAMESPACE}:sealed:")
    given = SealedKeyStore(redis_url, encryption_key=ENCRYPTION_KEY, prefix=f"{NAMESPACE}:sealed:")
    keys = {"openai": sandbox_key("openai", "ok")}
    assert given.open(from_env.seal(keys, "alice"), "alice") == keys


def test_missing_encryption_key_is_a_configuration_error(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENCRYPTION_KEY_ENV, raising=False)
    with pytest.raises(ValueError, match=f"need an encryption key \\(argument or {ENCRYPTION_KEY_ENV}\\)"):
        SealedKeyStore(redis_url)


@pytest.mark.parametrize(
    ("bad_key", "message"),
    [
        (base64.urlsafe_b64encode(b"k" * 16).decode(), "must be 32 bytes \\(AES-256\\), not 16"),
        ("not base64 at all!" * 3, "must be base64url-encoded"),
        (generate_encryption_key()[:-1] + "!", "must be base64url-encoded"),  # a typo, not another key
        (b"k" * 31, "must be 32 bytes"),
    ],
    ids=["16 bytes", "not base64", "a typo", "31 raw bytes"],
)
def test_malformed_encryption_key_is_refused_without_being_shown(
    redis_url: str, bad_key: str | bytes, message: str
) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        SealedKeyStore(redis_url, encryption_key=bad_key)
    shown = bad_key.decode() if isinstance(bad_key, bytes) else bad_key
    assert shown not in str(caught.value)


def test_an_encryption_key_in_standard_base64_works_too(redis_url: str) -> None:
    # What `openssl rand -base64 32` prints, newline included.
    openssl_style = base64.b64encode(bytes(range(200, 232))).decode() + "\n"
    assert "+" in openssl_style or "/" in openssl_style
    store = SealedKeyStore(redis_url, encryption_key=openssl_style, prefix=f"{NAMESPACE}:sealed:")
    keys = {"openai": sandbox_key("openai", "ok")}
    assert store.open(store.seal(keys, "alice"), "alice") == keys


def test_generated_encryption_keys_are_fresh_32_byte_keys() -> None:
    first, second = generate_encryption_key(), generate_encryption_key()
    assert first != second
    assert len(base64.urlsafe_b64decode(first + "=")) == 32


@pytest.mark.parametrize("ttl", [0, -5, 0.0001, float("nan")])
def test_a_ttl_redis_cannot_keep_is_refused(redis_url: str, ttl: float) -> None:
    with pytest.raises(ValueError, match=r"ttl must be at least 0\.001 seconds"):
        SealedKeyStore(redis_url, encryption_key=ENCRYPTION_KEY, ttl=ttl)


# Keyring: the keys of one context, sealed for the tasks it publishes


def test_a_context_seals_its_keys_once_for_all_its_tasks(store: SealedKeyStore, shared_redis: redis.Redis) -> None:
    keyring = Keyring({"openai": sandbox_key("openai", "ok")})
    refs = {keyring.seal("alice", store) for _ in range(5)}
    assert len(refs) == 1
    assert len(list(shared_redis.scan_iter(match=f"{NAMESPACE}:sealed:*"))) == 1


def test_a_long_lived_context_seals_again_before_its_reference_expires(redis_url: str) -> None:
    store = SealedKeyStore(redis_url, encryption_key=ENCRYPTION_KEY, ttl=1.0, prefix=f"{NAMESPACE}:sealed:")
    keys = {"openai": sandbox_key("openai", "ok")}
    keyring = Keyring(keys)
    first = keyring.seal("alice", store)
    time.sleep(0.6)  # past half the TTL: a task sent now could find the keys gone
    second = keyring.seal("alice", store)
    assert second != first
    assert store.open(second, "alice") == keys


def test_a_delayed_task_gets_a_reference_that_outlives_its_delay(store: SealedKeyStore) -> None:
    keyring = Keyring({"openai": sandbox_key("openai", "ok")})
    now = keyring.seal("alice", store)
    # 3000 s ahead: the first reference (3600 s) would leave less than half its TTL once the task starts.
    assert keyring.seal("alice", store, delay=3000) != now
    assert keyring.seal("alice", store, delay=60) == keyring.seal("alice", store, delay=60)


def test_a_task_scheduled_beyond_the_ttl_is_refused(store: SealedKeyStore) -> None:
    keyring = Keyring({"openai": sandbox_key("openai", "ok")})
    with pytest.raises(ByokKeyUnavailable) as caught:
        keyring.seal("alice", store, delay=3601)
    assert str(caught.value) == (
        "a task scheduled 3601 s ahead cannot take sealed keys, which live 3600 s: "
        "schedule it sooner, give the SealedKeyStore a longer ttl, or use a resolver"
    )
    assert keyring.ref is None


def test_keys_cannot_leave_without_a_store() -> None:
    with pytest.raises(ByokKeyUnavailable, match="need a SealedKeyStore to reach workers: pass key_store="):
        Keyring({"openai": sandbox_key("openai", "ok")}).seal("alice", None)


def test_a_reference_that_came_with_a_task_is_passed_on_unchanged(store: SealedKeyStore) -> None:
    # A worker publishing the next step of a chain: the keys stay where the web process sealed them.
    ref = store.seal({"openai": sandbox_key("openai", "ok")}, "alice")
    assert Keyring(ref=ref).seal("alice", None) == ref
    assert Keyring(ref=ref).seal("alice", store) == ref


def test_worker_opens_sealed_keys_once_per_task(configured: SealedKeyStore, shared_redis: redis.Redis) -> None:
    key = sandbox_key("openai", "ok")
    ref = configured.seal({"openai": key}, "alice")
    # What the worker adapter does around a task: the context decoded from its header.
    token = attach(ByokContext("alice", frozenset({"openai"}), Keyring(ref=ref)))
    try:
        assert current_key("openai") == key
        shared_redis.delete(f"{NAMESPACE}:sealed:{ref}")
        assert current_key("openai") == key  # opened on first use, kept for the task
    finally:
        detach(token)


def test_worker_without_a_store_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(byok_settings.current(), "key_store", None)
    keyring = Keyring(ref="r" * 22)
    with pytest.raises(ByokKeyUnavailable, match="no SealedKeyStore is configured in this process"):
        keyring.get("alice", "openai", byok_keys.key_store())


# Nothing of ours shows a key


def test_no_repr_of_ours_shows_a_key(configured: SealedKeyStore) -> None:
    key = sandbox_key("openai", "ok")
    with byok_context("alice", keys={"openai": key}) as context:
        assert context.keyring is not None
        given = repr(context.keyring)
        context.keyring.seal("alice", configured)
        sealed = repr(context.keyring)
        opened = Keyring(ref=context.keyring.ref)
        opened.get("alice", "openai", configured)
        shown = [repr(context), str(context), given, sealed, repr(opened), repr(configured)]
    assert not [text for text in shown if key in text or key[-24:] in text or ENCRYPTION_KEY in text]
    assert given == "Keyring(providers=['openai'], ref=None)"


def test_a_context_with_keys_cannot_be_pickled_into_a_message_or_a_result() -> None:
    # An exception annotated by llm_call carries the context: a pickling result backend
    # must fail to store it (Celery then stores a string stand-in) rather than store the keys.
    with (
        byok_context("alice", keys={"openai": sandbox_key("openai", "ok")}) as context,
        pytest.raises(TypeError, match="a Keyring holds keys and is never pickled"),
    ):
        pickle.dumps(context)
