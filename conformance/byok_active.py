"""A pytest plugin that makes byok-tasks active in a framework's own test suite.

Loaded with ``-p byok_active`` (``conformance/`` on ``PYTHONPATH``) by ``conformance/run.py``.
``BYOK_CONFORMANCE`` says how far:

- ``installed``: ``byok_tasks.celery.install()`` on every Celery app the suite makes,
  ``byok_tasks.rq.install()``, and ``ByokIntegration`` added to every Sentry client;
- ``context``: the same, and every test runs inside a BYOK context, so that headers and
  job meta are really written and read back.

Imports stay lazy: a suite that never imports a framework does not get it imported here.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from typing import Any

import pytest

MODE = os.environ.get("BYOK_CONFORMANCE", "installed")
SECRET = "conformance-secret-not-a-key"


def _activate_celery() -> None:
    from celery import Celery

    import byok_tasks.celery

    init = Celery.__init__

    @functools.wraps(init)
    def init_and_install(self: Celery, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        byok_tasks.celery.install(self, secret=SECRET)

    Celery.__init__ = init_and_install  # type: ignore[method-assign]


def _activate_rq() -> None:
    import byok_tasks.rq

    byok_tasks.rq.install(secret=SECRET)


def _activate_sentry() -> None:
    from sentry_sdk.client import _Client

    from byok_tasks.sentry import ByokIntegration

    init = _Client.__init__

    # Every client, not only sentry_sdk.init's: sentry-sdk's own tests set theirs up
    # through their conftest's sentry_init fixture, which builds sentry_sdk.Client(...)
    # directly (sentry_sdk.init does too).
    @functools.wraps(init)
    def init_with_byok(self: _Client, *args: Any, **kwargs: Any) -> None:
        integrations = list(kwargs.get("integrations") or [])
        if not any(isinstance(i, ByokIntegration) for i in integrations):
            integrations.append(ByokIntegration())
        kwargs["integrations"] = integrations
        init(self, *args, **kwargs)

    _Client.__init__ = init_with_byok  # type: ignore[method-assign]


_ACTIVATORS = {"celery": _activate_celery, "rq": _activate_rq, "sentry": _activate_sentry}


def pytest_configure(config: pytest.Config) -> None:
    for name in os.environ.get("BYOK_CONFORMANCE_FRAMEWORKS", "celery,rq,sentry").split(","):
        _ACTIVATORS[name]()


@pytest.fixture(autouse=True)
def _byok_context() -> Iterator[None]:
    if MODE != "context":
        yield
        return
    from byok_tasks import byok_context

    with byok_context("conformance-user", ["openai"]):
        yield
