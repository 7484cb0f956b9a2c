"""Mistakes that used to pass in silence are said once, when they happen."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from celery import Celery

import byok_tasks.celery
from byok_tasks import ByokContext, byok_context
from byok_tasks import keys as byok_keys
from byok_tasks import settings as byok_settings
from byok_tasks.header import HeaderCodec
from tests.support.celery_worker import SECRET


@pytest.fixture
def no_key_sources(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # The process's key sources are set once at start; each test here starts from none.
    monkeypatch.setattr(byok_settings.current(), "key_store", None)
    monkeypatch.setattr(byok_settings.current(), "resolver", None)
    yield


def resolve(uid: str, provider: str) -> str | None:
    return None


def other_resolve(uid: str, provider: str) -> str | None:
    return None


def app_with(**settings: Any) -> Celery:
    app = Celery(f"loud-{uuid.uuid4().hex[:6]}", broker="memory://", set_as_current=False)
    byok_tasks.celery.install(app, secret=SECRET, **settings)
    return app


def test_install_takes_the_resolver_cache_settings(no_key_sources: None) -> None:
    app_with(resolver=resolve, resolver_ttl=5, resolver_cache_size=10)
    assert byok_keys.describe_sources() == "resolver (cached 5 s, 10 pairs)"


def test_a_second_install_with_the_same_resolver_keeps_its_cache_settings(no_key_sources: None) -> None:
    byok_keys.configure(resolver=resolve, resolver_ttl=5)
    app_with(resolver=resolve)
    assert byok_keys.describe_sources() == "resolver (cached 5 s, 1024 pairs)"


def test_a_second_install_with_another_resolver_is_an_error(no_key_sources: None) -> None:
    app_with(resolver=resolve)
    with pytest.raises(ValueError, match="resolver with other settings"):
        app_with(resolver=other_resolve)


def test_a_second_install_with_another_module_level_lambda_is_an_error(no_key_sources: None) -> None:
    # Every lambda of a module has the same name: a lambda is the same resolver only as itself.
    tenant_keys = {"__name__": "tenant_keys"}
    exec("first = lambda uid, provider: 'sk-first'\nsecond = lambda uid, provider: 'sk-second'\n", tenant_keys)
    app_with(resolver=tenant_keys["first"])
    with pytest.raises(ValueError, match="resolver with other settings"):
        app_with(resolver=tenant_keys["second"])


def test_a_second_install_with_another_cache_ttl_is_an_error(no_key_sources: None) -> None:
    app_with(resolver=resolve)
    with pytest.raises(ValueError, match="resolver with other settings"):
        byok_keys.configure(resolver_ttl=1)


def test_cache_settings_without_any_resolver_are_an_error(no_key_sources: None) -> None:
    with pytest.raises(ValueError, match="pass resolver="):
        byok_keys.configure(resolver_ttl=1)


def test_a_worker_without_a_secret_warns_once_about_signed_headers(caplog: pytest.LogCaptureFixture) -> None:
    signing = HeaderCodec.configure(SECRET)
    header = signing.encode(ByokContext("alice", frozenset({"openai"})))
    secretless = HeaderCodec.configure(None)
    with caplog.at_level(logging.WARNING, logger="byok_tasks.header"):
        secretless.decode(header)
        secretless.decode(header + "")  # the same header again, and through the decode cache
        secretless.decode(signing.encode(ByokContext("bob", frozenset({"openai"}))))
    [record] = [r for r in caplog.records if r.name == "byok_tasks.header"]
    assert "no secret" in record.getMessage() and SECRET not in record.getMessage()


def test_a_context_sent_through_an_app_without_install_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    app_with()  # installed on one app of the process ...
    other = Celery("not-installed", broker="memory://", set_as_current=False)  # ... sent through another
    task_name = f"loud.uninstalled_{uuid.uuid4().hex[:6]}"
    with caplog.at_level(logging.WARNING, logger="byok_tasks.celery"), byok_context("alice", ["openai"]):
        other.send_task(task_name)
        other.send_task(task_name)
    [record] = [r for r in caplog.records if "was not called on" in r.getMessage()]
    assert task_name in record.getMessage()


def test_a_context_sent_through_an_installed_app_says_nothing(caplog: pytest.LogCaptureFixture) -> None:
    app = app_with()
    with caplog.at_level(logging.WARNING, logger="byok_tasks.celery"), byok_context("alice", ["openai"]):
        app.send_task(f"loud.installed_{uuid.uuid4().hex[:6]}")
    assert not [r for r in caplog.records if r.name == "byok_tasks.celery"]


def test_a_worker_logs_its_settings_once_at_start_without_the_secret(worker_factory: Any, redis_url: str) -> None:
    worker = worker_factory(redis_url, "solo")
    [line] = [line for line in worker.log().splitlines() if "byok-tasks: headers" in line]
    assert "headers signed (HMAC-SHA256), unsigned ones accepted" in line
    assert "max age 604800 s" in line and "keys from" in line and line.endswith("key health off")
    assert SECRET not in worker.log()


def test_a_module_imported_again_may_install_its_resolver_again(no_key_sources: None) -> None:
    source = "def resolve(uid, provider):\n    return None\n"
    first, again = {"__name__": "tenant_keys"}, {"__name__": "tenant_keys"}
    exec(source, first)
    exec(source, again)
    app_with(resolver=first["resolve"])
    app_with(resolver=again["resolve"])
