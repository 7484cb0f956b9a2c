"""A fresh process whose Celery app sends a task before byok_tasks.celery.install() is called.

That first publish builds the app's task sender without byok-tasks, which only a process
that has not installed yet can show. Prints the uid the next task's header carries.
Usage: python -m tests.apps.sent_before_install {this-app,another-app} SECRET
"""

import sys
from typing import Any

from celery import Celery, signals

import byok_tasks.celery
from byok_tasks import byok_context
from byok_tasks.header import HeaderCodec

installed_on, secret = sys.argv[1:3]
app = Celery("sent-before-install", broker="memory://", set_as_current=False)
app.send_task("early.task")
byok_tasks.celery.install(app if installed_on == "this-app" else Celery("other", set_as_current=False), secret=secret)
sent: list[dict[str, Any]] = []


def record(headers: dict[str, Any], **_: Any) -> None:
    sent.append(headers)


signals.after_task_publish.connect(record, weak=False)

with byok_context("early-alice", ["openai"]):
    app.send_task("early.task")
[headers] = sent
print(HeaderCodec.configure(secret).decode(headers["byok"]).uid if "byok" in headers else "no header")
