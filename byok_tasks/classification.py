"""Classify an exception from an LLM call: whose key, which provider, why.

Nothing here imports an HTTP client or an SDK. Each exception in the chain is read by
duck typing — the attributes that httpx, httpx2, requests, aiohttp, botocore and the
provider SDKs put on their exceptions — and the most informative one is classified with
its provider's table (:mod:`byok_tasks.providers`).
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

from .context import ByokContext, current_context
from .failure import RETRYABLE_REASONS, CallAnnotations, LLMFailure, Reason, Source, annotations_of
from .keys import ByokKeyUnavailable
from .providers import UNKNOWN, ProviderTable, by_host, by_module, by_name
from .redaction import redact

__all__ = ["classify"]

# Bounds that keep classification fast and safe on hostile input: a chain is short in
# practice, bodies are a few hundred bytes, and a message is for a human to read.
MAX_CHAIN = 16
MAX_BODY_CHARS = 64 * 1024
MAX_DETAILS = 16
MAX_MESSAGE_CHARS = 500

# Exceptions from these packages are about an HTTP exchange even when they carry no
# request object; a TimeoutError from elsewhere (a database driver, say) is not an LLM failure.
_HTTP_CLIENT_PACKAGES = frozenset(
    {"httpx", "httpx2", "httpcore", "httpcore2", "requests", "urllib3", "aiohttp", "botocore"}
)
_TIMEOUT_NAMES = ("Timeout", "TimedOut")
_CONNECTION_NAMES = ("Connect", "NetworkError", "ProtocolError", "ServerDisconnected", "NoResponse")

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
_NO_ANNOTATIONS = CallAnnotations()
# An HTTP status with the provider's code or message: the best an exception can offer.
_MOST_INFORMATIVE = 3


@dataclass(frozen=True, slots=True)
class _TypeFacts:
    qualified_name: str
    package: str
    transport: Reason | None


@dataclass(slots=True)
class _Evidence:
    """What one exception of the chain says about the failed call."""

    exc: BaseException
    facts: _TypeFacts
    weight: int
    status: int | None = None
    headers: Any = None
    codes: tuple[str, ...] = ()
    quota_ids: tuple[str, ...] = ()
    retry_delay: str | None = None
    message: str | None = None
    host: str | None = None
    operation: str | None = None


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
    best: _Evidence | None = None
    for link in chain:
        evidence = _read_safely(link, told)
        if evidence is not None and (best is None or evidence.weight > best.weight):
            best = evidence
            if best.weight == _MOST_INFORMATIVE:  # nothing deeper can beat it, and ties go outward
                break
    if best is None:
        return None

    table = _provider_table(best, chain, annotations, provider)
    headers = _wanted_headers(best.headers)
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
        for attribute in ("__cause__", "__context__"):
            try:
                linked = getattr(current, attribute)
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


def _source(declared: Source | None, context: ByokContext | None, provider: str) -> Source:
    if declared is not None:
        return declared
    return "byok" if context is not None and context.uses_own_key(provider) else "platform"


def _provider_table(
    best: _Evidence, chain: list[BaseException], annotations: CallAnnotations, provider: str | None
) -> ProviderTable:
    named = annotations.provider or provider
    if named:
        return by_name(named)
    if best.host is not None:
        table = by_host(best.host)
        if table is not None:
            return table
    table = by_module(type(best.exc).__module__, best.operation)
    if table is not None:
        return table
    for link in chain:
        if link is not best.exc:
            evidence = _read_safely(link, told=False)
            if evidence is not None and evidence.host is not None:
                table = by_host(evidence.host)
                if table is not None:
                    return table
            table = by_module(type(link).__module__, evidence.operation if evidence else None)
            if table is not None:
                return table
    return UNKNOWN


def _reason(evidence: _Evidence, table: ProviderTable, retry_after: float | None) -> Reason:
    transport = evidence.facts.transport
    if evidence.status is None and transport is not None and not evidence.codes:
        return transport

    # Structured fields first. Google's quota ids name the limit's window exactly.
    for fragment, reason in table.quota_ids:
        if any(fragment in quota_id for quota_id in evidence.quota_ids):
            return reason
    for code in evidence.codes:
        found = table.codes.get(code)
        if found is not None:
            return _refined(found, evidence, retry_after)

    # Text only where no structured field says it (see each table's ``messages``).
    message = (evidence.message or "").lower()
    for fragment, reason in table.messages:
        if fragment in message:
            return reason

    if evidence.status is not None:
        return _refined(table.reason_for_status(evidence.status), evidence, retry_after)
    return transport or "unknown"


def _refined(reason: Reason, evidence: _Evidence, retry_after: float | None) -> Reason:
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


def _bounded_message(evidence: _Evidence) -> str:
    text = evidence.message
    if text is None:
        text = _safe_str(evidence.exc)
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


def _safe_str(exc: BaseException) -> str:
    try:
        text = str(exc)
    except Exception:
        return ""
    return text if isinstance(text, str) else ""


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


# --- Reading one exception, by duck typing ------------------------------------------


_TYPE_FACTS: dict[type[BaseException], _TypeFacts] = {}
_TYPE_FACTS_LIMIT = 1024


def _type_facts(cls: type[BaseException]) -> _TypeFacts:
    facts = _TYPE_FACTS.get(cls)
    if facts is None:
        facts = _read_type(cls)
        if len(_TYPE_FACTS) < _TYPE_FACTS_LIMIT:  # classes made on the fly must not grow it forever
            _TYPE_FACTS[cls] = facts
    return facts


def _read_type(cls: type[BaseException]) -> _TypeFacts:
    package = cls.__module__.partition(".")[0]
    names = [klass.__name__ for klass in cls.__mro__]
    transport: Reason | None = None
    if issubclass(cls, TimeoutError):
        transport = "timeout"
    elif issubclass(cls, ConnectionError):
        transport = "connection"
    elif package in _HTTP_CLIENT_PACKAGES or by_module(cls.__module__, None) is not None:
        if any(marker in name for name in names for marker in _TIMEOUT_NAMES):
            transport = "timeout"
        elif any(marker in name for name in names for marker in _CONNECTION_NAMES):
            transport = "connection"
    return _TypeFacts(qualified_name=f"{cls.__module__}.{cls.__qualname__}", package=package, transport=transport)


def _read_safely(exc: BaseException, told: bool) -> _Evidence | None:
    # A hostile or half-built exception must not stop us from reading the others.
    try:
        return _read(exc, told)
    except Exception:
        return None


def _read(exc: BaseException, told: bool) -> _Evidence | None:
    """What ``exc`` says; ``told`` when an llm_call said the failing code was an LLM call."""
    facts = _type_facts(type(exc))
    from_sdk = by_module(type(exc).__module__, None) is not None or facts.package in _HTTP_CLIENT_PACKAGES
    response = _attribute(exc, "response")
    evidence = _Evidence(exc=exc, facts=facts, weight=0)
    evidence.host = _host(exc, response)
    evidence.operation = _str_or_none(_attribute(exc, "operation_name"))

    # A status_code alone is not enough: web frameworks' own HTTP exceptions carry one too.
    about_http = from_sdk or told or evidence.host is not None or response is not None
    if about_http:
        evidence.status = _status(exc, response)
        evidence.headers = _headers(exc, response)
        if isinstance(response, dict):  # botocore: the parsed error response
            _read_botocore(evidence, response)
        else:
            _read_body(evidence, _body(exc, response))

    if evidence.status is not None:
        evidence.weight = _MOST_INFORMATIVE if evidence.codes or evidence.message else 2
    elif facts.transport is not None:
        evidence.weight = 1
    elif from_sdk and by_module(type(exc).__module__, evidence.operation) is not None:
        evidence.weight = 1  # an SDK's own error without HTTP details: still the provider's failure
    else:
        return None
    return evidence


def _attribute(obj: object, name: str) -> Any:
    try:
        return getattr(obj, name, None)
    except Exception:  # properties that raise: httpx's ``request`` before it is set
        return None


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _int_status(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and 100 <= value <= 599:
        return value
    return None


def _status(exc: BaseException, response: Any) -> int | None:
    # One at a time: aiohttp warns when its deprecated ``code`` is read.
    for name in ("status_code", "status", "code"):
        status = _int_status(_attribute(exc, name))
        if status is not None:
            return status
    if isinstance(response, dict):
        metadata = response.get("ResponseMetadata")
        return _int_status(metadata.get("HTTPStatusCode")) if isinstance(metadata, dict) else None
    if response is not None:
        return _int_status(_attribute(response, "status_code")) or _int_status(_attribute(response, "status"))
    return None


def _headers(exc: BaseException, response: Any) -> Any:
    if isinstance(response, dict):
        metadata = response.get("ResponseMetadata")
        return metadata.get("HTTPHeaders") if isinstance(metadata, dict) else None
    headers = _attribute(exc, "headers")
    if headers is None and response is not None:
        headers = _attribute(response, "headers")
    return headers if _attribute(headers, "items") is not None else None


_WANTED_HEADERS = frozenset({"retry-after", "retry-after-ms", "x-request-id", "request-id", "x-amzn-requestid"})
_WANTED_RAW_HEADERS = frozenset(name.encode() for name in _WANTED_HEADERS)


def _wanted_headers(headers: Any) -> dict[str, str]:
    """The few headers we read, by lowercase name, in one pass over any header mapping."""
    wanted: dict[str, str] = {}
    if headers is None:
        return wanted
    try:
        # httpx's raw byte pairs are several times cheaper to scan than its decoded items.
        raw = None if isinstance(headers, dict) else _attribute(headers, "raw")
        if isinstance(raw, list):
            for name, value in raw:
                name = name.lower()
                if name in _WANTED_RAW_HEADERS:
                    wanted[name.decode()] = value.decode("latin-1")
            return wanted
        for name, value in headers.items():
            if isinstance(name, str) and isinstance(value, str):
                name = name.lower()
                if name in _WANTED_HEADERS:
                    wanted[name] = value
    except Exception:
        return {}
    return wanted


def _host(exc: BaseException, response: Any) -> str | None:
    request = _attribute(exc, "request")
    if request is None and response is not None and not isinstance(response, dict):
        request = _attribute(response, "request")
    if request is None:
        raw_response = _attribute(exc, "raw_response")  # mistralai
        request = _attribute(raw_response, "request") if raw_response is not None else None
    if request is None:
        request = _attribute(exc, "request_info")  # aiohttp
    url = _attribute(request, "url") if request is not None else None
    if url is None:
        kwargs = _attribute(exc, "kwargs")  # botocore: endpoint_url of transport errors
        url = kwargs.get("endpoint_url") if isinstance(kwargs, dict) else None
    if url is None:
        return None
    host = _attribute(url, "host")  # httpx and yarl URLs
    if isinstance(host, str) and host:
        return host.lower()
    if isinstance(url, str):
        try:
            return urlsplit(url[:2048]).hostname
        except ValueError:
            return None
    return None


def _body(exc: BaseException, response: Any) -> Any:
    body = _attribute(exc, "body")
    if body is None:
        details = _attribute(exc, "details")  # google-genai keeps the JSON body here
        if isinstance(details, (dict, list)):
            body = details
    if body is None and response is not None:
        # Only what the client already read: reading a streamed body here would be I/O.
        content = _attribute(response, "_content")
        if isinstance(content, bytes):
            body = content[:MAX_BODY_CHARS].decode("utf-8", "replace")
    if isinstance(body, bytes):
        body = body[:MAX_BODY_CHARS].decode("utf-8", "replace")
    if isinstance(body, str):
        stripped = body.lstrip()[:1]
        if stripped in ("{", "[", '"') and len(body) <= MAX_BODY_CHARS:
            try:
                return json.loads(body)
            except ValueError:
                return body
    return body


def _read_botocore(evidence: _Evidence, response: dict[Any, Any]) -> None:
    error = response.get("Error")
    if isinstance(error, dict):
        code = _str_or_none(error.get("Code"))
        evidence.codes = (code,) if code else ()
        evidence.message = _str_or_none(error.get("Message"))


def _read_body(evidence: _Evidence, body: Any) -> None:
    if isinstance(body, list) and body:
        body = body[0]
    if isinstance(body, str):
        evidence.message = body
        return
    if not isinstance(body, dict):
        return
    error = body.get("error")
    if isinstance(error, str):  # xAI: {"code": "<gRPC status text>", "error": "<message>"}
        evidence.message = error
        return
    if isinstance(error, dict):
        body = error

    codes: list[str] = []
    details = body.get("details")
    if isinstance(details, dict):  # Anthropic: error.details.error_code
        _append_code(codes, details.get("error_code"), evidence.status)
    elif isinstance(details, list):  # Google: google.rpc status details
        _read_google_details(evidence, codes, details)
    for key in ("code", "type", "status"):
        _append_code(codes, body.get(key), evidence.status)
    evidence.codes = tuple(codes)
    evidence.message = _str_or_none(body.get("message")) or _str_or_none(body.get("detail"))


def _append_code(codes: list[str], value: object, status: int | None) -> None:
    # OpenRouter and Azure repeat the HTTP status as the code: it adds nothing.
    if isinstance(value, str) and value and value not in codes and value != str(status):
        codes.append(value[:128])


def _read_google_details(evidence: _Evidence, codes: list[str], details: list[Any]) -> None:
    quota_ids: list[str] = []
    for detail in details[:MAX_DETAILS]:
        if not isinstance(detail, dict):
            continue
        kind = detail.get("@type")
        if not isinstance(kind, str):
            continue
        if kind.endswith("google.rpc.ErrorInfo"):
            _append_code(codes, detail.get("reason"), evidence.status)
        elif kind.endswith("google.rpc.QuotaFailure"):
            violations = detail.get("violations")
            if isinstance(violations, list):
                for violation in violations[:MAX_DETAILS]:
                    quota_id = violation.get("quotaId") if isinstance(violation, dict) else None
                    if isinstance(quota_id, str):
                        quota_ids.append(quota_id)
        elif kind.endswith("google.rpc.RetryInfo"):
            evidence.retry_delay = _str_or_none(detail.get("retryDelay"))
    evidence.quota_ids = tuple(quota_ids)
