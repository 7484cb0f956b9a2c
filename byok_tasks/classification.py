"""Classify an exception from an LLM call: whose key, which provider, why.

Each exception in the chain is read by :mod:`byok_tasks.evidence`; the most informative
one is classified here: its provider (:func:`_provider_table`) and its reason, weighed in
the one order written in :func:`_reason`, with the provider's table
(:mod:`byok_tasks.providers`).
"""

from __future__ import annotations

import re
import time
from email.utils import parsedate_to_datetime

from ._exceptions import ByokKeyUnavailable
from .context import ByokContext, current_context
from .evidence import MOST_INFORMATIVE, Evidence, attribute, safe_str, str_or_none, wanted_headers
from .evidence import read_safely as _read_safely
from .failure import RETRYABLE_REASONS, CallAnnotations, LLMFailure, Reason, Source, annotations_of
from .providers import UNKNOWN, ProviderTable, by_host, by_module, by_name, canonical_name, name_for_host
from .providers import common as _common
from .providers import gateways as _gateways
from .redaction import redact

__all__ = ["classify"]

# Bounds that keep classification fast and safe on hostile input: a chain is short in
# practice, and a message is for a human to read.
MAX_CHAIN = 16
MAX_MESSAGE_CHARS = 500

# A rate limit whose window is a day or a month will not clear by retrying within the
# task: for the user (and for on-call) it is an exhausted allowance. Nobody but Google
# says so in a structured field, and a retry-after longer than this says it too.
_LONG_WINDOW = re.compile(
    r"per[ -]day|per[ -]month|\bdaily\b|\bmonthly\b|/ ?(?:day|month)\b|\((?:TPD|RPD)\)|spending limit",
    re.IGNORECASE,
)
_LONG_RETRY_AFTER = 3600.0
# OpenAI and Groq answer a single request bigger than the per-minute token allowance
# with the rate-limit code; no amount of waiting lets it through.
_REQUEST_TOO_LARGE = re.compile(r"request too large", re.IGNORECASE)
# Statuses that say all there is to say: no wording in the body changes what they mean.
_DECISIVE_STATUSES = frozenset({401, 402, 408, 413, 504, 521, 522, 523, 524, 525, 526, 529})
# Text is matched within this much of a message: the cause is in the first sentence.
_TEXT_WINDOW = 1024
_NO_ANNOTATIONS = CallAnnotations()


def classify(exc: BaseException, *, provider: str | None = None) -> LLMFailure | None:
    """Classify ``exc`` if it is an LLM provider, HTTP or transport failure; else ``None``.

    The provider is, in this order: what an :func:`~byok_tasks.llm_call` around the call
    said, the ``provider`` argument, the request's host, the SDK that raised. The chain of
    ``__cause__``/``__context__`` is searched for the most informative exception, so
    failures wrapped by LangChain, tenacity or your own code are classified by what the
    provider answered. Never raises: a bug here must not hide the original failure.
    """
    if isinstance(exc, ByokKeyUnavailable) and (exc.provider or provider) is not None:
        # The user's key never reached the call: a BYOK failure, whoever's store failed.
        return LLMFailure(
            source="byok", provider=exc.provider or provider or "", reason="key_unavailable", status=None, code=None,
            retry_after=None, retryable=False, model=None, feature=None, operation="chat", uid=exc.uid,
            error_type=type(exc).__qualname__, message=redact(str(exc)),
        )  # fmt: skip
    try:
        return _classify(exc, provider)
    except Exception:
        return _minimal_failure(exc, provider)


def _classify(exc: BaseException, provider: str | None) -> LLMFailure | None:
    chain = _chain(exc)
    annotations = _merged_annotations(chain)
    # Inside an llm_call the caller has said it is an LLM call: a status is the provider's.
    told = annotations is not None
    annotations = annotations or _NO_ANNOTATIONS
    best: Evidence | None = None
    for link in chain:
        evidence = _read_safely(link, told)
        if evidence is not None and (best is None or evidence.weight > best.weight):
            best = evidence
            if best.weight == MOST_INFORMATIVE:  # nothing deeper can beat it, and ties go outward
                break
    if best is None:
        return None

    headers = wanted_headers(best.headers)
    aws_error_type = headers.get("x-amzn-errortype")
    if aws_error_type and not best.codes:  # AWS REST answers name the exception only in this header
        best.codes = (aws_error_type.partition(":")[0][:128],)
    table = _provider_table(best, chain, annotations, provider)
    retry_after = _retry_after(headers, best.retry_delay)
    reason = _reason(best, table, retry_after)
    context = annotations.context if annotations.context is not None else current_context()
    return LLMFailure(
        source=_source(annotations.source, context, table.name),
        provider=table.name,
        reason=reason,
        status=best.status,
        code=best.codes[0] if best.codes else None,
        retry_after=retry_after,
        retryable=reason in RETRYABLE_REASONS,
        model=annotations.model,
        feature=annotations.feature,
        operation=annotations.operation or "chat",
        uid=context.uid if context is not None else None,
        error_type=best.facts.qualified_name,
        message=_bounded_message(best),
        request_id=_request_id(headers),
    )


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception, then its causes and contexts, each once, outermost first."""
    chain = [exc]
    seen = {id(exc)}
    position = 0
    while position < len(chain) and len(chain) < MAX_CHAIN:
        current = chain[position]
        position += 1
        for name in ("__cause__", "__context__"):
            try:
                linked = getattr(current, name)
            except Exception:
                continue
            if isinstance(linked, BaseException) and id(linked) not in seen:
                seen.add(id(linked))
                chain.append(linked)
    return chain[:MAX_CHAIN]


def _merged_annotations(chain: list[BaseException]) -> CallAnnotations | None:
    # The deeper an exception, the closer to the call its llm_call was: it wins.
    merged = None
    for link in chain:
        found = annotations_of(link)
        if found is not None:
            merged = found if merged is None else found.filled_from(merged)
    return merged


# Gateways whose answers may name the provider they passed them through from.
_PASS_THROUGH = frozenset({"openrouter", "portkey", "litellm"})


def _source(declared: Source | None, context: ByokContext | None, provider: str) -> Source:
    if declared is not None:
        return declared
    return "byok" if context is not None and context.uses_own_key(provider) else "platform"


def _provider_table(
    best: Evidence, chain: list[BaseException], annotations: CallAnnotations, provider: str | None
) -> ProviderTable:
    """Whose failure it is, strongest word first.

    What the caller said (``llm_call``, the ``provider`` argument); the provider a wrapper
    library names (LiteLLM's ``llm_provider``); the request's host — a gateway's host
    resolved to the provider it passed the answer through from, a host without a table
    named by :func:`~byok_tasks.providers.name_for_host`; the SDK that raised; then the
    same for the other exceptions of the chain.
    """
    named = annotations.provider or provider
    if named:
        return by_name(named)
    for link in chain:
        llm_provider = str_or_none(attribute(link, "llm_provider"))
        if llm_provider is not None and (name := canonical_name(llm_provider)) is not None:
            return by_name(name)
    if best.host is not None:
        table = _host_table(best)
        if table is not None:
            return table
    if best.upstream is not None:
        return by_name(best.upstream)
    table = by_module(type(best.exc).__module__, best.operation)
    if table is not None:
        return table
    for link in chain:
        if link is not best.exc:
            evidence = _read_safely(link, told=False)
            if evidence is not None and evidence.host is not None:
                table = _host_table(evidence)
                if table is not None:
                    return table
            table = by_module(type(link).__module__, evidence.operation if evidence else None)
            if table is not None:
                return table
    return UNKNOWN


def _host_table(evidence: Evidence) -> ProviderTable | None:
    host = evidence.host or ""
    table = by_host(host)
    if table is _gateways.CLOUDFLARE:
        # /v1/{account}/{gateway}/{provider}/...: the provider is the fourth segment.
        segments = (evidence.path or "").split("/", 5)
        if evidence.gateway_own or len(segments) < 5:
            return table
        return by_name(_gateways.CLOUDFLARE_PATH_NAMES.get(segments[4]) or canonical_name(segments[4]) or table.name)
    proxied = _gateways.HELICONE_PROXIES.get(host)
    if proxied is not None:
        return _gateways.HELICONE if evidence.gateway_own else by_name(proxied)
    if evidence.upstream is not None and (table is None or table.name in _PASS_THROUGH):
        return by_name(evidence.upstream)
    if table is not None:
        return table
    if _is_litellm_answer(evidence):
        return _gateways.LITELLM
    # Only an LLM SDK says the host speaks an LLM API; a plain HTTP client's host could be anything.
    name = name_for_host(host) if by_module(type(evidence.exc).__module__, None) is not None else None
    return by_name(name) if name is not None else None


def _is_litellm_answer(evidence: Evidence) -> bool:
    return any(code in _gateways.LITELLM.codes for code in evidence.codes) or (
        evidence.message is not None and evidence.message.startswith("litellm.")
    )


def _reason(evidence: Evidence, table: ProviderTable, retry_after: float | None) -> Reason:
    """The one place where the fields of an answer are weighed. Strongest first:

    1. a transport failure that got no answer at all (no status, no code);
    2. Google's quota ids, which name the limit's window exactly;
    3. a specific structured code (``insufficient_quota``, ``overloaded_error``,
       ``throttlingException``): the provider's table, then the shared vocabulary. A code
       beats the status: it is the provider saying precisely what the status only hints at;
    4. the message's text, as a last resort before the status: only where the status leaves
       room for it (a 400, 403, 429 or 5xx, or none; never a 401, 402 or a timeout), and
       never an HTML page, which is the edge talking, not the provider;
    5. the HTTP status; for an error inside a 200 stream, a status its body states;
    6. a generic code (``server_error``, ``invalid_request_error``, ``api_error``). It names
       a class of error, so any status says more: a 4xx typed ``server_error`` is the caller's;
    7. the transport failure, else ``unknown``.

    A rate limit is then refined: a long window or retry-after makes it ``quota``, a single
    request larger than the per-minute allowance ``context_length``.
    """
    transport = evidence.facts.transport
    if evidence.status is None and transport is not None and not evidence.codes:
        return transport

    for fragment, reason in table.quota_ids:
        if any(fragment in quota_id for quota_id in evidence.quota_ids):
            return reason
    generic: Reason | None = None
    for code in evidence.codes:
        found = table.reason_for_code(code)
        if found is not None and code not in _common.GENERIC_CODES:
            return _refined(found, evidence, retry_after)
        generic = generic or found

    status = evidence.status if evidence.status not in (None, 200) else evidence.body_status
    if status not in _DECISIVE_STATUSES and not evidence.html and evidence.message:
        message = evidence.message[:_TEXT_WINDOW].lower()
        for messages in (table.messages, _common.MESSAGES):
            for fragment, reason in messages:
                if fragment in message:
                    return _refined(reason, evidence, retry_after)

    if status is not None:
        statuses = UNKNOWN if evidence.html else table
        return _refined(statuses.reason_for_status(status), evidence, retry_after)
    if generic is not None:
        return generic
    return transport or "unknown"


def _refined(reason: Reason, evidence: Evidence, retry_after: float | None) -> Reason:
    if reason != "rate_limit":
        return reason
    message = evidence.message or ""
    if (retry_after is not None and retry_after >= _LONG_RETRY_AFTER) or _LONG_WINDOW.search(message):
        return "quota"
    if _REQUEST_TOO_LARGE.search(message):
        return "context_length"
    return reason


def _retry_after(headers: dict[str, str], retry_delay: str | None) -> float | None:
    milliseconds = _number(headers.get("retry-after-ms"))
    if milliseconds is not None:
        return milliseconds / 1000
    value = headers.get("retry-after")
    if value is not None:
        seconds = _number(value)
        if seconds is None:
            seconds = _seconds_until(value)
        if seconds is not None:
            return seconds
    if retry_delay is not None:  # google.rpc.RetryInfo: "30s", "0.5s"
        return _number(retry_delay.removesuffix("s"))
    return None


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if 0 <= number < float("inf") else None


def _seconds_until(http_date: str) -> float | None:
    try:
        moment = parsedate_to_datetime(http_date)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, moment.timestamp() - time.time())


def _request_id(headers: dict[str, str]) -> str | None:
    for name in ("x-request-id", "request-id", "x-amzn-requestid"):
        value = headers.get(name)
        if value:
            return value[:128]
    return None


def _bounded_message(evidence: Evidence) -> str:
    text = evidence.message
    if text is None:
        text = safe_str(evidence.exc)
    # Redact before cutting to length, so that a cut cannot leave the start of a key
    # that is too short to be recognised; drop a token cut in half at the bound too.
    limit = MAX_MESSAGE_CHARS * 4
    if len(text) > limit:
        text = _without_cut_token(text[:limit])
    text = redact(text)
    if len(text) > MAX_MESSAGE_CHARS:
        text = text[:MAX_MESSAGE_CHARS] + "…"
    return text


def _without_cut_token(text: str) -> str:
    end = len(text)
    while end and (text[end - 1].isalnum() or text[end - 1] in "_-.*+/="):
        end -= 1
    return text[:end]


def _minimal_failure(exc: BaseException, provider: str | None) -> LLMFailure | None:
    """A bug in the classifier still leaves a failure the caller said was an LLM call."""
    try:
        annotations = annotations_of(exc)
        named = (annotations.provider if annotations else None) or provider
        if annotations is None and named is None:
            return None
        context = annotations.context if annotations and annotations.context is not None else current_context()
        name = named or "unknown"
        return LLMFailure(
            # Whose key it was matters most to triage: it must survive a classifier bug too.
            source=_source(annotations.source if annotations else None, context, name),
            provider=name,
            reason="unknown",
            status=None,
            code=None,
            retry_after=None,
            retryable=False,
            model=annotations.model if annotations else None,
            feature=annotations.feature if annotations else None,
            operation=(annotations.operation if annotations else None) or "chat",
            uid=context.uid if context is not None else None,
            error_type=type(exc).__qualname__,
            message="",
        )
    except Exception:
        return None
