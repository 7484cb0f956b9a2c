"""Dramatiq: the BYOK context travels in each message's options and is restored around the actor.

Everything goes through Dramatiq's public middleware API: add :class:`ByokMiddleware`
to the broker, in the process that sends and in the worker::

    broker = RedisBroker(url=...)
    broker.add_middleware(byok_tasks.dramatiq.ByokMiddleware(), before=type(broker.middleware[0]))

- ``before_enqueue`` seals the context's keys and writes the header; messages sent from
  a running actor inherit its context, and a retry keeps the header it was sent with.
  ``after_enqueue`` takes the header out of the sender's message again, so that the same
  message object sent again carries the context of that send.
- ``before_process_message`` restores the context (and the actor's name, for reports);
  ``after_process_message`` and ``after_skip_message`` reset it.
- ``after_process_message`` also reports a message's final LLM failure, once: Dramatiq's
  Retries middleware has decided by then whether the message runs again.
- ``after_declare_actor`` guards actors declared with ``byok_required=True`` and applies
  the ``llm_retry`` policy: Dramatiq has no hook that can refuse or retry a message.

Placed first, the middleware restores the context before any other sees the message,
and resets it after all of them (the Retries decision and error trackers included).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from contextvars import ContextVar
from typing import Any

from ._extras import needs_extra

with needs_extra(__name__, "Dramatiq", "dramatiq"):
    import dramatiq
    from dramatiq.middleware import Middleware, MiddlewareError, Retries

from . import propagation
from ._exceptions import ByokKeyUnavailable
from .header import DEFAULT_MAX_AGE, HEADER
from .keyring import Resolver, SealedKeyStore
from .retry import RetryPolicy

__all__ = ["ByokMiddleware", "llm_retry"]

logger = logging.getLogger(__name__)

_MARKER = "_byok_patched"
# The actor options this middleware adds: byok_required=True, and llm_retry()'s policy.
_REQUIRED, _POLICY = "byok_required", "byok_llm_retry"
# The message being processed in this worker thread, for the actor's guard and retry policy.
_message: ContextVar[Any] = ContextVar("byok_dramatiq_message", default=None)
# The options and header this thread's enqueue is writing: taken out again once sent.
_stamped: ContextVar[tuple[dict[str, Any], str] | None] = ContextVar("byok_dramatiq_stamped", default=None)


class _NotSent(ByokKeyUnavailable, MiddlewareError):
    # Dramatiq swallows what a before_enqueue hook raises, but for a MiddlewareError: a
    # message whose keys cannot reach the worker must fail where it is sent, not go out.
    pass


class ByokMiddleware(Middleware):
    """Carry the BYOK context through a broker's messages; the arguments are those of
    :func:`byok_tasks.celery.install`, and the same rules apply: one set of settings per process."""

    def __init__(
        self,
        *,
        secret: str | bytes | Sequence[str | bytes] | None = None,
        require_signature: bool = False,
        max_age: float = DEFAULT_MAX_AGE,
        key_store: SealedKeyStore | None = None,
        resolver: Resolver | None = None,
        resolver_ttl: float | None = None,
        resolver_cache_size: int | None = None,
    ) -> None:
        propagation.configure(
            "dramatiq",
            secret=secret,
            require_signature=require_signature,
            max_age=max_age,
            key_store=key_store,
            resolver=resolver,
            resolver_ttl=resolver_ttl,
            resolver_cache_size=resolver_cache_size,
        )

    @property
    def actor_options(self) -> set[str]:
        return {_REQUIRED, _POLICY}

    def before_enqueue(self, broker: Any, message: Any, delay: int | None) -> None:
        options, stamped = message.options, _stamped.get()
        if HEADER in options and not (stamped is not None and options[HEADER] is stamped[1]):
            return  # a retry, or a header the sender set: theirs to keep
        options.pop(HEADER, None)  # ours, from a send of this message that failed
        seconds = (delay or 0) / 1000
        try:
            propagation.seal_keys(seconds)
        except ByokKeyUnavailable as exc:
            raise _NotSent(str(exc), uid=exc.uid, provider=exc.provider) from exc
        header = propagation.header_to_send(seconds)
        if header is not None:
            options[HEADER] = header
            _stamped.set((options, header))

    def after_enqueue(self, broker: Any, message: Any, delay: int | None) -> None:
        # Some brokers (RabbitMQ's, without a delay) send the caller's own message: left with
        # our header, that message sent again, under another user's context, would go as ours.
        stamped = _stamped.get()
        if stamped is not None and stamped[0] is message.options:
            if message.options.get(HEADER) is stamped[1]:
                del message.options[HEADER]
            _stamped.set(None)

    def before_process_message(self, broker: Any, message: Any) -> None:
        context, problem = propagation.restore(message.options.get(HEADER), lambda: f"message {message.message_id}")
        message._byok_problem = problem
        message._byok_entered = propagation.enter(context, message.actor_name), _message.set(message)

    def after_process_message(
        self, broker: Any, message: Any, *, result: Any = None, exception: BaseException | None = None
    ) -> None:
        if isinstance(exception, dramatiq.Retry) and message.failed:
            # The actor's own max_retries ran out before llm_retry's: the LLM failure it retried is final.
            exception = exception.__cause__
        if exception is not None and not isinstance(exception, dramatiq.Retry):
            actor = broker.get_actor(message.actor_name)
            throws = message.options.get("throws") or actor.options.get("throws")
            # Retries fails a message it gives up on; without Retries, every failure is final.
            if message.failed or not any(isinstance(other, Retries) for other in broker.middleware):
                propagation.task_failed(exception, "dramatiq", expected=bool(throws) and isinstance(exception, throws))
            else:
                propagation.will_be_retried(exception)
        self._leave(message)

    def after_skip_message(self, broker: Any, message: Any) -> None:
        self._leave(message)

    @staticmethod
    def _leave(message: Any) -> None:
        entered = vars(message).pop("_byok_entered", None)
        if entered is not None:
            propagation.leave(entered[0])
            _message.reset(entered[1])

    def after_declare_actor(self, broker: Any, actor: Any) -> None:
        if getattr(actor.fn, _MARKER, False):
            return
        policy = actor.options.get(_POLICY)
        if isinstance(policy, RetryPolicy):
            actor.fn = _retrying(actor.fn, policy)
        if actor.options.get(_REQUIRED):
            actor.fn = _guarded(actor.fn, actor.actor_name)
        setattr(actor.fn, _MARKER, True)

    def after_worker_boot(self, broker: Any, worker: Any) -> None:
        line = propagation.start_up_line()
        if line is not None:
            logger.info("%s", line)


def _not_retried(message: Any) -> None:
    # What Retries reads before anything else: this message has had all the retries it gets.
    if message is not None:
        message.options["max_retries"] = 0


def _guarded(fn: Any, name: str) -> Any:
    # The outermost wrapper (outside the retry policy), so that the refusal is never retried.
    @functools.wraps(fn)
    def run_if_allowed(*args: Any, **kwargs: Any) -> Any:
        message = _message.get()
        if message is not None:
            error = propagation.refusal(f"actor {name}[{message.message_id}]", getattr(message, "_byok_problem", None))
            if error is not None:
                _not_retried(message)
                raise error
        return fn(*args, **kwargs)

    return run_if_allowed


def _retrying(fn: Any, policy: RetryPolicy) -> Any:
    @functools.wraps(fn)
    def run_with_llm_retry(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except dramatiq.Retry:
            raise
        except Exception as exc:
            message = _message.get()
            if message is None:  # called as a plain function, outside a worker
                raise
            decision = policy.decide(exc, int(message.options.get("retries", 0)))
            if decision is None:
                raise  # not an LLM failure: the actor's own retry settings decide
            logger.info("message %s: %s", message.message_id, decision.why)
            if not decision.retry:
                _not_retried(message)
                raise
            # Retries waits as long as a Retry asks (in milliseconds), not its own backoff.
            raise dramatiq.Retry(decision.why, delay=max(1, round(decision.delay * 1000))) from exc

    return run_with_llm_retry


def llm_retry(
    max_retries: int = 5,
    *,
    backoff: float = 1.0,
    backoff_max: float = 60.0,
    retry_after_max: float = 60.0,
    jitter: bool = True,
) -> dict[str, Any]:
    """Actor options that retry the LLM failures that clear by themselves, and only those::

        @dramatiq.actor(**byok_tasks.dramatiq.llm_retry(max_retries=5))
        def summarise(doc_id: str) -> None: ...

    The policy of :func:`byok_tasks.celery.llm_retry`, through Dramatiq's own Retries
    middleware: a retryable failure raises ``dramatiq.Retry`` with the provider's
    ``retry-after`` (capped) or a backoff as its delay; ``quota``, ``invalid_key`` and the
    other reasons fail at once. Only the final failure is reported. ``max_retries`` counts
    the message's retries as Dramatiq does (``retries``), those for other exceptions
    included; the actor's own ``max_retries`` (Dramatiq's default: 20) still caps them.
    """
    policy = RetryPolicy(
        max_retries=max_retries,
        backoff=backoff,
        backoff_max=backoff_max,
        retry_after_max=retry_after_max,
        jitter=jitter,
    )
    return {_POLICY: policy}
