"""LangChain: failures of chat models and embeddings say which provider, model and feature they were.

::

    llm = ChatOpenAI(model="gpt-4o-mini", api_key=current_key("openai"), callbacks=[ByokCallbackHandler()])
    embeddings = ByokEmbeddings(OpenAIEmbeddings(model="text-embedding-3-small"), feature="search")

:class:`ByokCallbackHandler` annotates the exception of a failed chat or completion run
the way :func:`byok_tasks.llm_call` does, and lets it go: wherever the failure is
classified later (when it leaves the task, or in a Sentry event) it has its model,
feature and operation. The provider is left to the classifier unless given, because
LangChain's provider name is the client's (``openai`` for ``ChatOpenAI`` pointed at
OpenRouter) while the request's host names the real one. The feature is the handler's,
else the name of the running task, filled in at classification.

LangChain's embeddings run no callbacks: wrap them in :class:`ByokEmbeddings`.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections import OrderedDict
from contextvars import copy_context
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from ._extras import needs_extra

with needs_extra(__name__, "LangChain", "langchain"):
    from langchain_core.callbacks import BaseCallbackHandler
    from langchain_core.embeddings import Embeddings
    from langchain_core.outputs import LLMResult

from .failure import CallAnnotations, Source, annotate, llm_call
from .report import mark_reported, report_llm_error

__all__ = ["ByokCallbackHandler", "ByokEmbeddings"]


@dataclass(frozen=True, slots=True)
class _Run:
    model: str | None
    operation: str


class ByokCallbackHandler(BaseCallbackHandler):
    """Annotate the exception of every failed LLM run with its provider, model, feature and operation.

    One handler can serve every model and every concurrent run: what it learns at a run's
    start (the model, from LangChain's ``ls_model_name`` metadata) is dropped at the run's
    end, and at most :attr:`MAX_RUNS` unfinished runs are remembered. ``provider``, ``model``
    and ``feature``, when given, win over what the run says; ``source`` says whose key the
    model uses when the context cannot (a platform-key fallback for a BYOK provider).

    The failure is not reported here: it is reported once, where its fate is known (when
    it leaves the task, or by the application). ``report=True`` is for runs whose failures
    LangChain may swallow or handle, as with every model of ``with_fallbacks``: the handler
    then calls :func:`byok_tasks.report_llm_error`, off the event loop when there is one,
    and the failure is not reported again if LangChain re-raises it when all models fail.
    """

    # Annotating is a few attribute writes: in async runs, LangChain would otherwise spend a
    # thread of the loop's executor on each failure to do them (reporting goes there anyway).
    run_inline = True
    # Runs that start and never end (a process that dies mid-call) must not pile up.
    MAX_RUNS = 1024

    def __init__(
        self,
        provider: str | None = None,
        *,
        model: str | None = None,
        feature: str | None = None,
        source: Source | None = None,
        report: bool = False,
    ) -> None:
        self.provider = provider
        self.model = model
        self.feature = feature
        self.source = source
        self.report = report
        self._runs: OrderedDict[UUID, _Run] = OrderedDict()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return (
            f"ByokCallbackHandler(provider={self.provider!r}, model={self.model!r}, "
            f"feature={self.feature!r}, source={self.source!r}, report={self.report!r})"
        )

    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[Any]],
        *,
        run_id: UUID,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self._start(run_id, metadata, "chat")

    def on_llm_start(
        self,
        serialized: dict[str, Any],
        prompts: list[str],
        *,
        run_id: UUID,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self._start(run_id, metadata, "completion")

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        with self._lock:
            self._runs.pop(run_id, None)

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        with self._lock:
            run = self._runs.pop(run_id, None)
        # Cancellation and interrupts end a run too, but they are no LLM failure.
        if not isinstance(error, Exception):
            return
        annotate(
            error,
            CallAnnotations(
                provider=self.provider,
                model=self.model or (run.model if run is not None else None),
                feature=self.feature,
                operation=run.operation if run is not None else None,
                source=self.source,
            ),
        )
        if self.report:
            _report(error)

    def _start(self, run_id: UUID, metadata: dict[str, Any] | None, operation: str) -> None:
        model = (metadata or {}).get("ls_model_name")
        with self._lock:
            self._runs[run_id] = _Run(model if isinstance(model, str) else None, operation)
            while len(self._runs) > self.MAX_RUNS:
                self._runs.popitem(last=False)


def _report(error: Exception) -> None:
    # Now, not when the executor gets to it: the task may fail with this very error first.
    mark_reported(error)
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        report_llm_error(error)
        return
    # On the event loop: the logging handlers' writes go to a thread, with this context
    # (the BYOK context and the task's name) so that the record says whose failure it was.
    loop.run_in_executor(None, functools.partial(copy_context().run, report_llm_error, error))


class ByokEmbeddings(Embeddings):
    """``embeddings``, whose failures carry their provider, model, feature and ``operation="embeddings"``.

    LangChain's embeddings (``OpenAIEmbeddings`` among them) run no callbacks, so this
    wrapper does what :class:`ByokCallbackHandler` does for chat models. The model is
    read from the wrapped object's ``model`` when not given.
    """

    def __init__(
        self,
        embeddings: Embeddings,
        provider: str | None = None,
        *,
        model: str | None = None,
        feature: str | None = None,
    ) -> None:
        self.embeddings = embeddings
        if model is None and isinstance(getattr(embeddings, "model", None), str):
            model = embeddings.model  # type: ignore[attr-defined]
        self._call = llm_call(provider, model=model, feature=feature, operation="embeddings")

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        with self._call:
            return self.embeddings.embed_documents(texts)

    def embed_query(self, text: str) -> list[float]:
        with self._call:
            return self.embeddings.embed_query(text)

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        async with self._call:
            return await self.embeddings.aembed_documents(texts)

    async def aembed_query(self, text: str) -> list[float]:
        async with self._call:
            return await self.embeddings.aembed_query(text)
