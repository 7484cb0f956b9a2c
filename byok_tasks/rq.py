"""RQ: the BYOK context travels in each job's ``meta`` and is restored around the whole job.

RQ has no signals, so :func:`install` wraps these methods, once per process:

- ``Job.create``, which every way of making a job goes through (``enqueue``,
  ``enqueue_call``, ``enqueue_many``, ``enqueue_at``/``enqueue_in``, dependent jobs,
  jobs enqueued from a running job): the current context is written to
  ``job.meta["byok"]``. Retries re-enqueue the same job, meta and all.
- ``Queue.schedule_job``: a scheduled job's header allows for its delay.
- ``perform_job`` of the worker, which runs the job, its callbacks and its failure
  handling, in the forking ``Worker``'s work horse and in ``SimpleWorker`` alike:
  the context is restored before and reset after.
- ``Job.perform``: a ``byok_required`` job without a context is refused, not retried.
- ``handle_exception`` of the worker: a job's final failure is logged and reported.

``SpawnWorker`` is refused at start: its work horses are fresh interpreters that never
run ``install()``.

Call ``install()`` in the process that enqueues and in the worker (for example in the
settings module given to ``rq worker -c``). Supports RQ 2.x and 3.x.
"""

from __future__ import annotations

import functools
import inspect
import logging
import math
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Any, TypeVar, overload

from ._extras import needs_extra

with needs_extra(__name__, "RQ", "rq"):
    import rq.worker
    from rq.job import Job, get_current_job
    from rq.queue import Queue
    from rq.worker import BaseWorker, Worker

from . import health, keys, report
from .context import ByokContext, attach, current_context, detach, refusal
from .header import DEFAULT_MAX_AGE, HEADER, HeaderCodec, why_refused
from .retry import RetryPolicy
from .startup import settings_line

__all__ = ["byok_required", "install", "llm_retry"]

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
    resolver_ttl: float | None = None,
    resolver_cache_size: int | None = None,
    key_health: health.KeyHealth | None = None,
) -> None:
    """Carry the BYOK context through RQ jobs; the arguments are those of :func:`byok_tasks.celery.install`."""
    global _codec
    codec = HeaderCodec.configure(secret, require_signature=require_signature, max_age=max_age)
    if _codec is not None and codec != _codec:
        raise ValueError("byok_tasks.rq.install() was already called in this process with other settings")
    keys.configure(
        store=key_store, resolver=resolver, resolver_ttl=resolver_ttl, resolver_cache_size=resolver_cache_size
    )
    if key_health is not None:
        health.configure(key_health, sender=_rq_sender(key_health))
    if _codec is not None:
        return
    _codec = codec
    job: Any = Job
    queue: Any = Queue
    # RQ 3 defines perform_job on BaseWorker; early 2.x releases on Worker, which SimpleWorker extends there.
    worker: Any = BaseWorker if "perform_job" in vars(BaseWorker) else Worker
    job.create = classmethod(_stamping(job.create.__func__))
    job.perform = _refusing_without_context(job.perform)
    queue.schedule_job = _scheduling(queue.schedule_job)
    worker.perform_job = _restoring(worker.perform_job)
    worker.handle_exception = _reporting(worker.handle_exception)
    # The work loop's first step, after RQ has set up its logging: the settings line is seen.
    worker.bootstrap = _announcing(worker.bootstrap)
    spawn_worker: Any = getattr(rq.worker, "SpawnWorker", None)  # RQ 2.6 and later
    if spawn_worker is not None:
        spawn_worker.bootstrap = _refusing_to_start(spawn_worker.bootstrap)


def _rq_sender(key_health: health.KeyHealth) -> Callable[[str, dict[str, Any]], object]:
    # A client of its own, not the health store's (bounded to 50 ms): enqueueing is off the task's path.
    def send(name: str, kwargs: dict[str, Any]) -> object:
        from redis import Redis

        return Queue(key_health.notify_queue, connection=Redis.from_url(key_health.redis_url)).enqueue(
            name, kwargs=kwargs
        )

    return send


def _stamp(job: Job, delay: float = 0.0) -> None:
    context = current_context()
    if context is None or _codec is None:
        return
    if context.keyring is not None:
        # Raises (to the code that enqueues) when the keys cannot reach the worker in time.
        context.keyring.seal(context.uid, keys.key_store(), delay=delay)
    # A new dict: the meta passed to enqueue is the caller's, and may be reused for another user's job.
    job.meta = {**job.meta, HEADER: _codec.encode(context, delay=delay)}


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
            # astimezone() reads a naive datetime as local time, as RQ's scheduler does.
            _stamp(job, delay=max(0.0, (when.astimezone() - datetime.now(timezone.utc)).total_seconds()))
        return schedule_job(self, job, when, *args, **kwargs)

    return schedule_with_delay


def _context_of(job: Job) -> tuple[ByokContext | None, str | None]:
    """The job's context, and what was wrong with its header if it was refused."""
    value = (job.meta or {}).get(HEADER)
    if value is None or _codec is None:
        return None, None
    try:
        return _codec.decode(value), None
    except Exception as exc:
        problem = why_refused(exc)
        logger.warning("job %s: BYOK header refused, running without a BYOK context: %s", job.id, problem)
        return None, problem


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
            succeeded = perform_job(self, job, queue, *args, **kwargs)
            if succeeded:
                health.task_succeeded()  # a key handed out with a failing status worked: its status is ok again
            return succeeded
        finally:
            task = report.running_task()
            reported = task is not None and task.failure_reported
            detach(context_token)
            report.exit_task(task_token)
            # A work horse leaves through os._exit, skipping the error tracker's exit-time
            # flush: the event sent for this job's failure would die in its queue.
            if reported and self.is_horse:
                report.flush_events()
            if self.is_horse:
                health.flush()  # the user hook's calls queued by this job, likewise

    return perform_in_context


def _refusing_without_context(perform: Callable[[Job], Any]) -> Callable[[Job], Any]:
    @functools.wraps(perform)
    def perform_if_allowed(self: Job) -> Any:
        if getattr(self.func, "byok_required", False):
            error = refusal(f"job {self.func_name}[{self.id}]", current_context(), getattr(self, "_byok_problem", None))
            if error is not None:
                self.retries_left = None  # a missing context does not appear by retrying
                raise error
        return perform(self)

    return perform_if_allowed


def _refusing_to_start(bootstrap: Callable[..., Any]) -> Callable[..., Any]:
    # SpawnWorker runs each job in a fresh interpreter that never imports the settings
    # module, so nothing there would restore the context or refuse a byok_required job:
    # jobs would quietly run on the platform's keys. Better not to start at all.
    @functools.wraps(bootstrap)
    def refuse_to_start(self: BaseWorker, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(
            "byok_tasks.rq cannot restore BYOK contexts in SpawnWorker, whose work horses never run install(): "
            "start rq.worker.Worker or rq.worker.SimpleWorker instead"
        )

    return refuse_to_start


def _announcing(bootstrap: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(bootstrap)
    def bootstrap_and_announce(self: BaseWorker, *args: Any, **kwargs: Any) -> Any:
        result = bootstrap(self, *args, **kwargs)
        if _codec is not None:
            # The worker's own logger: `rq worker` sets up its handler, not ours.
            self.log.info("%s", settings_line(_codec))
        return result

    return bootstrap_and_announce


def _reporting(handle_exception: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(handle_exception)
    def handle_and_report(self: BaseWorker, job: Job, *exc_info: Any, **kwargs: Any) -> Any:
        exc = exc_info[1] if len(exc_info) > 1 else None
        if exc is not None:
            # A job with retries left will run again: only its last failure is reported.
            if _will_run_again(job):
                _will_be_retried(exc)
            else:
                report.task_failed(exc, "rq")
        return handle_exception(self, job, *exc_info, **kwargs)

    return handle_and_report


def _will_run_again(job: Job) -> bool:
    # RQ's own test: retries_left may be anything on a job RQ never made, and deciding
    # which failure to report must never raise where RQ itself would not.
    try:
        return bool(job.should_retry)
    except Exception:
        return False


def _will_be_retried(exc: BaseException) -> None:
    # RQ logs every failed run as an error, the ones it retries too. An LLM failure is
    # reported once, when the last run fails: the log line of this run is not an event.
    task = report.running_task()
    if task is not None and report.failure_of(exc) is not None:
        task.failure_reported = True


# What llm_retry keeps in job.meta: the LLM retries made so far, and the job's own retry
# intervals (from enqueue(retry=Retry(...))), which an LLM retry replaces for one run.
_LLM_RETRIES = "byok_llm_retries"
_OWN_INTERVALS = "byok_own_retry_intervals"


@overload
def llm_retry(func: _F, /) -> _F: ...


@overload
def llm_retry(
    func: None = None,
    /,
    *,
    max_retries: int = 5,
    backoff: float = 1.0,
    backoff_max: float = 60.0,
    retry_after_max: float = 60.0,
    jitter: bool = True,
) -> Callable[[_F], _F]: ...


def llm_retry(
    func: _F | None = None,
    /,
    *,
    max_retries: int = 5,
    backoff: float = 1.0,
    backoff_max: float = 60.0,
    retry_after_max: float = 60.0,
    jitter: bool = True,
) -> _F | Callable[[_F], _F]:
    """Retry a job's LLM failures that clear by themselves, and only those, through RQ's own retry::

        @byok_tasks.rq.llm_retry(max_retries=5)
        def summarise(doc_id: str) -> str:
            with llm_call("openai"):
                return client.chat.completions.create(...)

        queue.enqueue(summarise, "doc-1")  # rq worker --with-scheduler ...

    The policy is that of :func:`byok_tasks.celery.llm_retry`: ``rate_limit``,
    ``overloaded``, ``server_error``, ``timeout`` and ``connection`` are retried after the
    provider's ``retry-after`` (capped) or with backoff and jitter; ``quota``,
    ``invalid_key``, ``permission``, ``context_length`` and ``content_filter`` fail at once,
    even when the job was enqueued with ``retry=Retry(...)``. Only the final failure is
    reported. Other exceptions keep the job's own ``Retry(max, interval)``, if it has one,
    with its own count: LLM retries do not use it up.

    A retry that waits is a scheduled job, as with RQ's ``Retry(interval=...)``: start the
    worker with ``--with-scheduler``. RQ schedules to the second, so a wait is made to end
    on a whole second (never sooner than the provider asked), and RQ's scheduler looks for
    due jobs once a second: a retry comes up to two seconds after the policy's wait. Async
    job functions work too. Give the SDK client ``max_retries=0``.
    """
    policy = RetryPolicy(
        max_retries=max_retries,
        backoff=backoff,
        backoff_max=backoff_max,
        retry_after_max=retry_after_max,
        jitter=jitter,
    )

    def decorate(job_function: _F) -> _F:
        if inspect.iscoroutinefunction(job_function):
            # RQ runs an async job's coroutine itself: its failure only shows when awaited.
            @functools.wraps(job_function)
            async def with_llm_retry_async(*args: Any, **kwargs: Any) -> Any:
                try:
                    return await job_function(*args, **kwargs)
                except Exception as exc:
                    _decide_retry_of_current_job(exc, policy)
                    raise

            return with_llm_retry_async  # type: ignore[return-value]

        @functools.wraps(job_function)
        def with_llm_retry(*args: Any, **kwargs: Any) -> Any:
            try:
                return job_function(*args, **kwargs)
            except Exception as exc:
                _decide_retry_of_current_job(exc, policy)
                raise

        return with_llm_retry  # type: ignore[return-value]

    return decorate if func is None else decorate(func)


def _decide_retry_of_current_job(exc: BaseException, policy: RetryPolicy) -> None:
    job = get_current_job()
    if job is not None:  # None: called as a plain function, outside a worker
        _decide_retry(job, exc, policy)


def _decide_retry(job: Job, exc: BaseException, policy: RetryPolicy) -> None:
    # This runs in the job, before the worker's failure handling reads retries_left and
    # retry_intervals: setting them here is how RQ is told to retry, when, or not at all.
    meta = job.meta
    if _OWN_INTERVALS in meta:
        job.retry_intervals = meta[_OWN_INTERVALS]  # an earlier LLM retry replaced them
    decision = policy.decide(exc, int(meta.get(_LLM_RETRIES, 0)))
    if decision is None:
        return  # not an LLM failure: the job's own Retry, if any, decides
    logger.info("job %s: %s", job.id, decision.why)
    if not decision.retry:
        job.retries_left = 0  # not even the job's own Retry: waiting does not clear this
        return
    meta[_OWN_INTERVALS] = job.retry_intervals
    meta[_LLM_RETRIES] = int(meta.get(_LLM_RETRIES, 0)) + 1
    # RQ takes one from retries_left as it retries: with one more, the job's own count is intact.
    job.retries_left = (job.retries_left or 0) + 1
    # RQ picks intervals[max(len - retries_left, 0)]: with a single one, that one. RQ files a
    # scheduled job under its time truncated to the second and enqueues it once the clock's
    # second reaches that: up to a second early, sooner than the provider's retry-after. A
    # wait that ends on a whole second is never early.
    now = time.time()
    job.retry_intervals = [math.ceil(now + decision.delay) - now]  # type: ignore[list-item]
