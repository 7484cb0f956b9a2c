"""RQ: the BYOK context travels in each job's ``meta`` and is restored around the whole job.

RQ has no signals, so :func:`install` wraps four methods, once per process:

- ``Job.create``, which every way of making a job goes through (``enqueue``,
  ``enqueue_call``, ``enqueue_many``, ``enqueue_at``/``enqueue_in``, dependent jobs):
  the current context is written to ``job.meta["byok"]``. Retries re-enqueue the same
  job, meta and all.
- ``Queue.schedule_job``: a scheduled job's header allows for its delay.
- ``BaseWorker.perform_job``, which runs the job, its callbacks and its failure
  handling, in the forking ``Worker``'s work horse and in ``SimpleWorker`` alike:
  the context is restored before and reset after.
- ``BaseWorker.handle_exception``: a job's final failure is logged and reported.

Call ``install()`` in the process that enqueues and in the worker (for example in the
settings module given to ``rq worker -c``).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Any, TypeVar

from rq.job import Job
from rq.queue import Queue
from rq.worker import BaseWorker

from . import keys, report
from .context import ByokContext, ByokContextRequired, attach, current_context, detach
from .header import DEFAULT_MAX_AGE, HEADER, HeaderCodec, HeaderError

__all__ = ["byok_required", "install"]

logger = logging.getLogger(__name__)

_codec: HeaderCodec | None = None
_F = TypeVar("_F", bound=Callable[..., Any])


def byok_required(func: _F) -> _F:
    """Mark a job function that must run under a BYOK context: without one, the job fails at
    once (:class:`byok_tasks.ByokContextRequired`, not retried) instead of using the platform's key.
    """
    func.byok_required = True  # type: ignore[attr-defined]
    return func


def install(
    *,
    secret: str | bytes | Sequence[str | bytes] | None = None,
    require_signature: bool = False,
    max_age: float = DEFAULT_MAX_AGE,
    key_store: keys.SealedKeyStore | None = None,
    resolver: keys.Resolver | None = None,
) -> None:
    """Carry the BYOK context through RQ jobs; the arguments are those of :func:`byok_tasks.celery.install`."""
    global _codec
    codec = HeaderCodec.configure(secret, require_signature=require_signature, max_age=max_age)
    keys.configure(store=key_store, resolver=resolver)
    if _codec is not None:
        if codec != _codec:
            raise ValueError("byok_tasks.rq.install() was already called in this process with other settings")
        return
    _codec = codec
    job: Any = Job
    queue: Any = Queue
    worker: Any = BaseWorker
    job.create = classmethod(_stamping(job.create.__func__))
    job.perform = _refusing_without_context(job.perform)
    queue.schedule_job = _scheduling(queue.schedule_job)
    worker.perform_job = _restoring(worker.perform_job)
    worker.handle_exception = _reporting(worker.handle_exception)


def _stamp(job: Job, delay: float = 0.0) -> None:
    context = current_context()
    if context is None or _codec is None:
        return
    if context.keyring is not None:
        store = keys.key_store()
        if store is None:
            raise keys.ByokKeyUnavailable(
                "keys given to byok_context() need a SealedKeyStore to reach workers: pass key_store= to install()"
            )
        if delay > store.ttl:
            raise keys.ByokKeyUnavailable(
                f"job {job.id} is scheduled {delay:.0f} s ahead, beyond the {store.ttl:g} s that sealed keys live"
            )
        context.keyring.seal(context.uid, store)
    job.meta[HEADER] = _codec.encode(context, delay=delay)


def _stamping(create: Callable[..., Job]) -> Callable[..., Job]:
    @functools.wraps(create)
    def stamped_create(cls: type[Job], *args: Any, **kwargs: Any) -> Job:
        job = create(cls, *args, **kwargs)
        # A header in the meta the caller passed is the caller's choice.
        if HEADER not in job.meta:
            _stamp(job)
            job._byok_stamped = True  # type: ignore[attr-defined]
        return job

    return stamped_create


def _scheduling(schedule_job: Callable[..., Job]) -> Callable[..., Job]:
    @functools.wraps(schedule_job)
    def schedule_with_delay(self: Queue, job: Job, when: datetime, *args: Any, **kwargs: Any) -> Job:
        if getattr(job, "_byok_stamped", False):
            aware = when if when.tzinfo is not None else when.replace(tzinfo=timezone.utc)
            _stamp(job, delay=max(0.0, (aware - datetime.now(timezone.utc)).total_seconds()))
        return schedule_job(self, job, when, *args, **kwargs)

    return schedule_with_delay


def _context_of(job: Job) -> tuple[ByokContext | None, str | None]:
    """The job's context, and what was wrong with its header if it was refused."""
    value = (job.meta or {}).get(HEADER)
    if value is None or _codec is None:
        return None, None
    try:
        return _codec.decode(value), None
    except HeaderError as exc:
        logger.warning("job %s: BYOK header refused, running without a BYOK context: %s", job.id, exc)
        return None, str(exc)


def _job_name(job: Job) -> str:
    try:
        return str(job.func_name)
    except Exception:  # a job whose function cannot be deserialised still runs its failure path
        return "unknown"


def _restoring(perform_job: Callable[..., bool]) -> Callable[..., bool]:
    @functools.wraps(perform_job)
    def perform_in_context(self: BaseWorker, job: Job, queue: Queue, *args: Any, **kwargs: Any) -> bool:
        context, problem = _context_of(job)
        job._byok_problem = problem  # type: ignore[attr-defined]
        context_token, task_token = attach(context), report.enter_task(_job_name(job))
        try:
            return perform_job(self, job, queue, *args, **kwargs)
        finally:
            detach(context_token)
            report.exit_task(task_token)

    return perform_in_context


def _refusing_without_context(perform: Callable[[Job], Any]) -> Callable[[Job], Any]:
    @functools.wraps(perform)
    def perform_if_allowed(self: Job) -> Any:
        if current_context() is None and getattr(self.func, "byok_required", False):
            self.retries_left = None  # a missing context does not appear by retrying
            why = getattr(self, "_byok_problem", None) or "none was set where it was enqueued"
            raise ByokContextRequired(f"job {self.func_name}[{self.id}] requires a BYOK context: {why}")
        return perform(self)

    return perform_if_allowed


def _reporting(handle_exception: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(handle_exception)
    def handle_and_report(self: BaseWorker, job: Job, *exc_info: Any, **kwargs: Any) -> Any:
        # A job with retries left will run again: only its last failure is reported.
        if not (job.retries_left and job.retries_left > 0) and exc_info and exc_info[1] is not None:
            report.task_failed(exc_info[1], "rq")
        return handle_exception(self, job, *exc_info, **kwargs)

    return handle_and_report
