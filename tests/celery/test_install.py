"""install() leaves the app alone: nothing of its configuration is read, built or frozen.

Celery builds ``app.amqp`` (queues, exchange, routing, serializer, retry policy) from the
configuration on first access, once. An install() that touched it before the configuration
was loaded would freeze the defaults: tasks would go to a queue no worker consumes.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
import warnings
from typing import Any
from unittest.mock import patch

import pytest
from celery import Celery
from celery.exceptions import DuplicateTaskNameWarning

import byok_tasks.celery
from byok_tasks import ByokContextRequired, byok_context
from tests.support.celery_worker import SECRET
from tests.support.processes import ROOT
from tests.support.timing import TIMEOUT


def fresh_app(**kwargs: Any) -> Celery:
    app = Celery(f"install-{uuid.uuid4().hex[:6]}", set_as_current=False, **kwargs)
    byok_tasks.celery.install(app, secret=SECRET)
    return app


def test_install_loads_no_configuration() -> None:
    app = fresh_app()
    assert not app.configured
    assert "amqp" not in vars(app)


def test_configuration_loaded_after_install_decides_which_queues_a_worker_consumes() -> None:
    app = fresh_app()
    app.config_from_object({"task_default_queue": "reports"})
    assert list(app.amqp.queues) == ["reports"]
    assert app.amqp.router.route({}, "any.task")["queue"].name == "reports"


def test_defaults_added_after_install_are_kept() -> None:
    app = fresh_app()
    app.add_defaults({"byok_test_setting": "kept"})
    assert app.conf.byok_test_setting == "kept"


def test_install_accepts_a_broker_whose_transport_is_not_importable_yet() -> None:
    # The transport is looked up when the app first connects, not when byok-tasks is installed.
    fresh_app(broker="transport-loaded-later://")


def test_task_sent_after_late_configuration_reaches_the_worker(worker_factory: Any, redis_url: str) -> None:
    worker = worker_factory(redis_url, "solo", app_module="tests.apps.late_config_app", queue_from_config=True)
    # The publisher is set up like the worker's module: install() before the configuration.
    app = fresh_app()
    app.config_from_object({"broker_url": redis_url, "result_backend": redis_url, "task_default_queue": worker.queue})
    try:
        with byok_context("late-alice", ["openai"]):
            result = app.send_task("late.whoami")
        assert result.get(timeout=TIMEOUT) == "late-alice"
    finally:
        app.close()


def test_patching_send_task_on_the_class_after_install_still_sees_every_task() -> None:
    app = fresh_app(broker="memory://")
    with patch("celery.app.base.Celery.send_task") as send_task:
        app.send_task("tasks.add", countdown=10)
    send_task.assert_called_with("tasks.add", countdown=10)


@pytest.mark.parametrize("installed_on", ["this-app", "another-app"])
def test_an_app_that_sent_tasks_before_install_sends_the_context_after_it(installed_on: str) -> None:
    # In a process of its own: here, an earlier test's install() has patched every app already.
    done = subprocess.run(
        [sys.executable, "-m", "tests.apps.sent_before_install", installed_on, SECRET],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert done.stdout.strip() == "early-alice"


def test_duplicate_task_name_warning_points_at_the_users_line() -> None:
    app = fresh_app()

    @app.task(name="install.duplicate", shared=False)
    def first() -> None: ...

    app.finalize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")

        @app.task(name="install.duplicate", shared=False)
        def second() -> None: ...

    [warning] = [w for w in caught if issubclass(w.category, DuplicateTaskNameWarning)]
    assert warning.filename == __file__


def test_required_task_registered_after_the_app_was_finalized_is_refused() -> None:
    app = fresh_app()
    app.finalize()

    @app.task(shared=False, byok_required=True)
    def required() -> None: ...

    with pytest.raises(ByokContextRequired):
        required.apply(throw=True)


def test_required_class_based_task_registered_by_hand_is_refused() -> None:
    app = fresh_app()

    class Required(app.Task):  # type: ignore[name-defined,misc]
        name = "install.required_class"
        byok_required = True

        def run(self) -> None: ...

    task = app.register_task(Required())
    with pytest.raises(ByokContextRequired):
        task.apply(throw=True)
