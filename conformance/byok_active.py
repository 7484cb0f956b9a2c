"""A pytest plugin that makes byok-tasks active in a framework's own test suite.

Loaded with ``-p byok_active`` (``conformance/`` on ``PYTHONPATH``) by ``conformance/run.py``.
``BYOK_CONFORMANCE`` says how far:

- ``installed``: ``byok_tasks.celery.install()`` on every Celery app the suite makes,
  ``byok_tasks.rq.install()``, and ``ByokIntegration`` added to every ``sentry_sdk.init``;
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
    import sentry_sdk

    from byok_tasks.sentry import ByokIntegration

    def with_byok(init: Any) -> Any:
        @functools.wraps(init)
        def init_with_byok(*args: Any, **kwargs: Any) -> Any:
            integrations = list(kwargs.get("integrations") or [])
            if not any(isinstance(i, ByokIntegration) for i in integrations):
                integrations.append(ByokIntegration())
            kwargs["integrations"] = integrations
            return init(*args, **kwargs)

        return init_with_byok

    sentry_sdk.init = with_byok(sentry_sdk.init)
    # sentry-sdk's own tests set up clients through their conftest's helper, which calls
    # sentry_sdk.init as imported there: patching the module attribute covers it too.


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
