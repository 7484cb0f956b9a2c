"""A Celery app set up in the order the README allows: install() first, the configuration after."""

import os

from celery import Celery

import byok_tasks.celery
from byok_tasks import current_context

app = Celery("late_config", set_as_current=False)
byok_tasks.celery.install(app)


class Config:
    broker_url = os.environ["BROKER_URL"]
    result_backend = os.environ["RESULT_BACKEND"]
    task_default_queue = os.environ["BYOK_TEST_QUEUE"]
    broker_connection_retry_on_startup = True


app.config_from_object(Config)


@app.task(name="late.whoami")
def whoami() -> str | None:
    context = current_context()
    return None if context is None else context.uid
