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

from . import propagation
from .context import ByokContext
from .header import DEFAULT_MAX_AGE, HEADER
from .health import KeyHealth
from .keyring import Resolver, SealedKeyStore
from .retry import RetryPolicy

__all__ = ["byok_required", "install", "llm_retry"]

logger = logging.getLogger(__name__)

_MARKER = "_byok_patched"
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
    key_store: SealedKeyStore | None = None,
    resolver: Resolver | None = None,
    resolver_ttl: float | None = None,
    resolver_cache_size: int | None = None,
    key_health: KeyHealth | None = None,
) -> None:
    """Carry the BYOK context through RQ jobs; the arguments are those of :func:`byok_tasks.celery.install`."""
    propagation.configure(
        "rq",
        secret=secret,
        require_signature=require_signature,
        max_age=max_age,
        key_store=key_store,
        resolver=resolver,
        resolver_ttl=resolver_ttl,
        resolver_cache_size=resolver_cache_size,
        key_health=key_health,
        notice_sender=None if key_health is None else _notice_sender(key_health),
    )
    # RQ 3 defines perform_job on BaseWorker; early 2.x releases on Worker, which SimpleWorker extends there.
    worker: Any = BaseWorker if "perform_job" in vars(BaseWorker) else Worker
    _patch_class_method(Job, "create", _stamping)
    _patch(Job, "perform", _refusing_without_context)
    _patch(Queue, "schedule_job", _scheduling)
    _patch(worker, "perform_job", _restoring)
    _patch(worker, "handle_exception", _reporting)
    # The work loop's first step, after RQ has set up its logging: the settings line is seen.
    _patch(worker, "bootstrap", _announcing)
    spawn_worker: Any = getattr(rq.worker, "SpawnWorker", None)  # RQ 2.6 and later
    if spawn_worker is not None:
        _patch(spawn_worker, "bootstrap", _refusing_to_start)


def _patch(owner: Any, name: str, wrap: Callable[[Any], Any]) -> None:
    # Looked up on the class itself: a subclass (SpawnWorker) gets its own patch, once.
    original = vars(owner).get(name) or getattr(owner, name)
    if not getattr(original, _MARKER, False):
        patched = wrap(original)
        setattr(patched, _MARKER, True)
        setattr(owner, name, patched)


def _patch_class_method(owner: Any, name: str, wrap: Callable[[Any], Any]) -> None:
    original = vars(owner)[name].__func__
    if not getattr(original, _MARKER, False):
        patched = wrap(original)
        setattr(patched, _MARKER, True)
        setattr(owner, name, classmethod(patched))


def _notice_sender(key_health: KeyHealth) -> Callable[[str, dict[str, Any]], object]:
    # A client of its own, not the health store's (bounded to 50 ms): enqueueing is off the task's path.
    def send(name: str, kwargs: dict[str, Any]) -> object:
        from redis import Redis

        return Queue(key_health.notify_queue, connection=Redis.from_url(key_health.redis_url)).enqueue(
            name, kwargs=kwargs
        )

    return send


def _stamp(job: Job, delay: float = 0.0) -> None:
    if not propagation.installed():
        return
    # First, since the header carries the sealed keys' reference. Raises (to the code that
    # enqueues) when the keys cannot reach the worker in time.
    propagation.seal_keys(delay)
    header = propagation.header_to_send(delay)
    if header is None:
        return
    # A new dict: the meta passed to enqueue is the caller's, and may be reused for another user's job.
    job.meta = {**job.meta, HEADER: header}


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
    return propagation.restore((job.meta or {}).get(HEADER), lambda: f"job {job.id}")


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
        entered = propagation.enter(context, _job_name(job))
        try:
            succeeded = perform_job(self, job, queue, *args, **kwargs)
            if succeeded:
                propagation.succeeded()
            return succeeded
        finally:
            # A work horse leaves through os._exit, skipping the exit-time flushes: the event
            # and the user notice queued for this job's failure would die in their queues.
            reported = propagation.leave(entered)
            if self.is_horse:
                propagation.flush_before_exit(events=reported)

    return perform_in_context


def _refusing_without_context(perform: Callable[[Job], Any]) -> Callable[[Job], Any]:
    @functools.wraps(perform)
    def perform_if_allowed(self: Job) -> Any:
        if getattr(self.func, "byok_required", False):
            error = propagation.refusal(f"job {self.func_name}[{self.id}]", getattr(self, "_byok_problem", None))
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
        line = propagation.start_up_line()
        if line is not None:
            # The worker's own logger: `rq worker` sets up its handler, not ours.
            self.log.info("%s", line)
        return result

    return bootstrap_and_announce


def _reporting(handle_exception: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(handle_exception)
    def handle_and_report(self: BaseWorker, job: Job, *exc_info: Any, **kwargs: Any) -> Any:
        exc = exc_info[1] if len(exc_info) > 1 else None
        if exc is not None:
            # A job with retries left will run again: only its last failure is reported.
            if _will_run_again(job):
                # RQ logs every failed run as an error, the ones it retries too: the log
                # line of this run is not an event.
                propagation.will_be_retried(exc)
            else:
                propagation.task_failed(exc, "rq")
        return handle_exception(self, job, *exc_info, **kwargs)

    return handle_and_report


def _will_run_again(job: Job) -> bool:
    # RQ's own test: retries_left may be anything on a job RQ never made, and deciding
    # which failure to report must never raise where RQ itself would not.
    try:
        return bool(job.should_retry)
    except Exception:
        return False


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
