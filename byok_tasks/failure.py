"""What a failed LLM call was: :class:`LLMFailure`, and :func:`llm_call`, which annotates one.

A failure is usually classified far from where it happened: after the exception has
left the task, when the BYOK context that said whose key was used has been reset.
:func:`llm_call` therefore records what the caller knew (provider, model, feature,
source) and a snapshot of the BYOK context on the exception itself, at the moment the
exception leaves the call; :func:`byok_tasks.classify` reads it back later.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass, fields
from types import TracebackType
from typing import Any, TypeVar, cast

from .context import ByokContext, current_context
from .names import RETRYABLE_REASONS, Reason, Source
from .providers import provider_name

__all__ = [
    "RETRYABLE_REASONS",
    "CallAnnotations",
    "LLMFailure",
    "Reason",
    "Source",
    "annotate",
    "annotations_of",
    "llm_call",
]


@dataclass(frozen=True, slots=True)
class LLMFailure:
    """A failed LLM call, classified: whose key, which provider, why, and what to do next.

    ``message`` is the provider's own explanation with credentials removed and its length
    bounded, so it can go to logs and error trackers as it is.
    """

    source: Source
    provider: str
    reason: Reason
    status: int | None
    code: str | None
    retry_after: float | None
    retryable: bool
    model: str | None
    feature: str | None
    operation: str
    uid: str | None
    error_type: str
    message: str
    request_id: str | None = None

    def as_dict(self) -> dict[str, object]:
        """The fields as a plain dict, for structured logs and error-tracker contexts."""
        return {field.name: getattr(self, field.name) for field in fields(self)}


@dataclass(frozen=True, slots=True)
class CallAnnotations:
    """What the code around an LLM call knew about it, carried on the exception it raised.

    ``context`` is the BYOK context in force when the exception left the call; keeping the
    (immutable) context rather than a yes/no lets the classifier decide whose key it was
    for the provider it finds, even when the caller did not name one.
    """

    provider: str | None = None
    model: str | None = None
    feature: str | None = None
    operation: str | None = None
    source: Source | None = None
    context: ByokContext | None = None

    def filled_from(self, outer: CallAnnotations) -> CallAnnotations:
        """These annotations, with the fields left unset here taken from ``outer``."""
        return CallAnnotations(
            provider=self.provider if self.provider is not None else outer.provider,
            model=self.model if self.model is not None else outer.model,
            feature=self.feature if self.feature is not None else outer.feature,
            operation=self.operation if self.operation is not None else outer.operation,
            source=self.source if self.source is not None else outer.source,
            context=self.context if self.context is not None else outer.context,
        )


# The one attribute llm_call adds to an exception. Private, so that it cannot collide
# with what the SDKs put on their exceptions.
_ANNOTATIONS_ATTRIBUTE = "_byok_tasks_call"


def annotations_of(exc: BaseException) -> CallAnnotations | None:
    """The annotations an :func:`llm_call` attached to ``exc``, if any."""
    try:
        found = exc.__dict__.get(_ANNOTATIONS_ATTRIBUTE)
    except Exception:  # an exception type without a __dict__, or a hostile one
        return None
    return found if isinstance(found, CallAnnotations) else None


def annotate(exc: BaseException, annotations: CallAnnotations) -> None:
    """Attach ``annotations`` to ``exc``, filling only what earlier (inner) annotations left unset.

    This is what an :func:`llm_call` does when a failure passes out of it. When no
    annotation says which BYOK context was in force, the current one is recorded: it
    will have been reset by the time the failure is classified.
    """
    existing = annotations_of(exc)
    # An inner llm_call annotated this exception first: what it said wins, we fill gaps.
    merged = existing.filled_from(annotations) if existing is not None else annotations
    if merged.context is None and (context := current_context()) is not None:
        merged = merged.filled_from(CallAnnotations(context=context))
    # An exception with __slots__ cannot take it; the failure still propagates, unannotated.
    with contextlib.suppress(Exception):
        setattr(exc, _ANNOTATIONS_ATTRIBUTE, merged)


_F = TypeVar("_F", bound=Callable[..., Any])


class llm_call:  # named like the function it is used as: ``with llm_call(...)``, ``@llm_call(...)``
    """Annotate one LLM call so its failure can be classified later, wherever that happens.

    Use it as ``with``, ``async with`` or as a decorator on a sync or async function. It
    never catches or alters an exception: when one passes out, it records the arguments
    given here and the BYOK context in force on the exception and lets it go. Nested
    calls combine: the innermost value of each field wins. ``operation`` is ``"chat"``
    when no level names one. Holding no state, one instance can be shared by concurrent
    calls, so it works as a decorator on a function that runs in many tasks at once.
    """

    __slots__ = ("_annotations",)

    def __init__(
        self,
        provider: str | None = None,
        *,
        model: str | None = None,
        feature: str | None = None,
        operation: str | None = None,
        source: Source | None = None,
    ) -> None:
        if provider is not None:
            provider_name(provider)
        if source not in (None, "byok", "platform"):
            raise ValueError(f"source must be 'byok' or 'platform', not {source!r}")
        self._annotations = CallAnnotations(
            provider=provider, model=model, feature=feature, operation=operation, source=source
        )

    def __enter__(self) -> llm_call:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        # Only failures: cancellation, KeyboardInterrupt and SystemExit are not LLM failures.
        if isinstance(exc, Exception):
            annotate(exc, self._annotations)

    async def __aenter__(self) -> llm_call:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, traceback)

    def __call__(self, func: _F) -> _F:
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                async with self:
                    return await func(*args, **kwargs)

            return cast(_F, async_wrapper)

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with self:
                return func(*args, **kwargs)

        return cast(_F, wrapper)
