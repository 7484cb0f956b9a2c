"""What runs here: the task (Celery, Dramatiq) or job (RQ) of this thread or coroutine, as reporting needs it.

A leaf: the propagation core enters and exits a task around each unit of work, and the
reporting side reads it (for the feature of a failure that names none, and to know
whether the failure of the task already has its event).
"""

from __future__ import annotations

from contextvars import ContextVar, Token
from dataclasses import dataclass

__all__ = ["RunningTask", "enter_task", "exit_task", "running_task"]


@dataclass(slots=True)  # one is made for every task
class RunningTask:
    """The task (Celery) or job (RQ) running here, as the reporting side needs to know it."""

    name: str
    # Set once the task's LLM failure is dealt with (our sink sent it, the application
    # reported it, the task declared it expected, or the framework will retry it): the
    # framework then logs that same failure, and its log record must not become an event.
    failure_reported: bool = False


_task: ContextVar[RunningTask | None] = ContextVar("byok_task", default=None)


def enter_task(name: str) -> Token[RunningTask | None]:
    """Mark what runs from here on as task ``name``: failures that name no feature are filed under it."""
    return _task.set(RunningTask(name))


def exit_task(token: Token[RunningTask | None]) -> None:
    try:
        _task.reset(token)
    except (ValueError, RuntimeError):  # reset from another Context: clearing is the safe answer
        _task.set(None)


def running_task() -> RunningTask | None:
    return _task.get()
