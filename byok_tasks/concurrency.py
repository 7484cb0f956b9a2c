"""Work a task hands to threads keeps the task's BYOK context; reporting that stays off the event loop.

The context lives in a ContextVar. ``asyncio.create_task``, ``asyncio.gather`` and
``asyncio.to_thread`` copy it into what they start, so asyncio needs nothing more. A
thread pool does not: ``ThreadPoolExecutor.submit`` and ``loop.run_in_executor`` run the
function with the worker thread's own, empty context, where :func:`byok_tasks.current_key`
answers None and failures are filed as the platform's. Submit with
:func:`submit_with_context` instead (``asyncio.wrap_future`` makes its future awaitable).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Executor, Future
from contextvars import copy_context
from typing import ParamSpec, TypeVar

from .failure import LLMFailure, Source
from .report import report_llm_error

__all__ = ["report_llm_error_async", "submit_with_context"]

_P = ParamSpec("_P")
_T = TypeVar("_T")


def submit_with_context(executor: Executor, fn: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> Future[_T]:
    """``executor.submit(fn, *args, **kwargs)``, run in a copy of the caller's context (BYOK context included)."""
    context = copy_context()

    def run() -> _T:
        return context.run(fn, *args, **kwargs)

    return executor.submit(run)


async def report_llm_error_async(
    exc: BaseException,
    *,
    provider: str | None = None,
    model: str | None = None,
    feature: str | None = None,
    operation: str | None = None,
    source: Source | None = None,
) -> LLMFailure | None:
    """:func:`byok_tasks.report_llm_error` for async code: the logging handlers' I/O runs in a thread.

    The thread sees the caller's context, so the report names the user and the task.
    """
    return await asyncio.to_thread(
        report_llm_error, exc, provider=provider, model=model, feature=feature, operation=operation, source=source
    )
