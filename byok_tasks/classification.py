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
from .providers import UNKNOWN, ProviderTable, by_host, by_module, by_name, canonical_name, name_for_host
from .providers import common as _common
from .providers import gateways as _gateways
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
# Statuses that say all there is to say: no wording in the body changes what they mean.
_DECISIVE_STATUSES = frozenset({401, 402, 408, 413, 504, 521, 522, 523, 524, 525, 526, 529})
# Text is matched within this much of a message: the cause is in the first sentence.
_TEXT_WINDOW = 1024
# Markers of the servers and edges whose HTML error pages stand in for a provider's answer.
_HTML_SOURCES = ("cloudflare", "openresty", "nginx", "awselb", "envoy", "akamai", "varnish", "apache")
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
    path: str | None = None
    operation: str | None = None
    # A status the body states, for answers without one (errors inside a 200 stream).
    body_status: int | None = None
    # The provider a gateway says it passed this answer through from.
    upstream: str | None = None
    # The gateway itself answered (its own key, budget or limits), not the provider behind it.
    gateway_own: bool = False
    # The answer was an HTML page from whatever stands in front of the provider.
    html: bool = False


def classify(exc: BaseException, *, provider: str | None = None) -> LLMFailure | None:
    """Classify ``exc`` if it is an LLM provider, HTTP or transport failure; else ``None``.

    The provider is, in this order: what an :func:`~byok_tasks.llm_call` around the call
    said, the ``provider`` argument, the request's host, the SDK that raised. The chain of
    ``__cause__``/``__context__`` is searched for the most informative exception, so
    failures wrapped by LangChain, tenacity or your own code are classified by what the
    provider answered. Never raises: a bug here must not hide the original failure.
    """
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

    headers = _wanted_headers(best.headers)
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


# Gateways whose answers may name the provider they passed them through from.
_PASS_THROUGH = frozenset({"openrouter", "portkey", "litellm"})


def _source(declared: Source | None, context: ByokContext | None, provider: str) -> Source:
    if declared is not None:
        return declared
    return "byok" if context is not None and context.uses_own_key(provider) else "platform"


def _provider_table(
    best: _Evidence, chain: list[BaseException], annotations: CallAnnotations, provider: str | None
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
        llm_provider = _str_or_none(_attribute(link, "llm_provider"))
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


def _host_table(evidence: _Evidence) -> ProviderTable | None:
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


def _is_litellm_answer(evidence: _Evidence) -> bool:
    return any(code in _gateways.LITELLM.codes for code in evidence.codes) or (
        evidence.message is not None and evidence.message.startswith("litellm.")
    )


def _reason(evidence: _Evidence, table: ProviderTable, retry_after: float | None) -> Reason:
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
    evidence.host, evidence.path = _host(exc, response)
    evidence.operation = _str_or_none(_attribute(exc, "operation_name"))

    # A status_code alone is not enough: web frameworks' own HTTP exceptions carry one too.
    about_http = from_sdk or told or evidence.host is not None or response is not None
    if about_http:
        evidence.status = _status(exc, response)
        evidence.headers = _headers(exc, response)
        if isinstance(response, dict):  # botocore: the parsed error response
            _read_botocore(evidence, response)
        else:
            _read_body(evidence, _body(exc, response, whole=evidence.host in _WHOLE_BODY_HOSTS), nested=False)
        if evidence.status is not None and evidence.message is None:
            # Not JSON: the SDK's message is the body itself (an HTML page, plain text, nothing).
            _read_text(evidence, _safe_str(exc))

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


_WANTED_HEADERS = frozenset(
    {"retry-after", "retry-after-ms", "x-request-id", "request-id", "x-amzn-requestid", "x-amzn-errortype"}
)
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


def _host(exc: BaseException, response: Any) -> tuple[str | None, str | None]:
    """The request's host, and its path where a gateway names the provider in it."""
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
        return None, None
    host = _attribute(url, "host")  # httpx and yarl URLs
    if isinstance(host, str) and host:
        host = host.lower()
        return host, (_str_or_none(_attribute(url, "path")) if host in _PATH_HOSTS else None)
    if isinstance(url, str):
        try:
            parts = urlsplit(url[:2048])
        except ValueError:
            return None, None
        return parts.hostname, (parts.path if parts.hostname in _PATH_HOSTS else None)
    return None, None


# Hosts whose request path says which provider answered.
_PATH_HOSTS = frozenset(_gateways.CLOUDFLARE.hosts)
# Gateways whose whole body is read, not only the part the SDK kept.
_WHOLE_BODY_HOSTS = frozenset(
    {*_PATH_HOSTS, *_gateways.HELICONE_PROXIES, *_gateways.HELICONE.hosts, *_gateways.PORTKEY.hosts}
)


def _body(exc: BaseException, response: Any, *, whole: bool = False) -> Any:
    # SDKs keep only the body's "error" part; a gateway's markers sit beside it.
    body: Any = _whole_content(response) if whole else None
    if body is None:
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
        stripped = body[:256].lstrip()[:1]
        if stripped in ("{", "[", '"') and len(body) <= MAX_BODY_CHARS:
            try:
                return json.loads(body)
            except ValueError:
                return body
    return body


def _whole_content(response: Any) -> str | None:
    content = _attribute(response, "_content") if response is not None else None
    return content[:MAX_BODY_CHARS].decode("utf-8", "replace") if isinstance(content, bytes) and content else None


def _read_botocore(evidence: _Evidence, response: dict[Any, Any]) -> None:
    error = response.get("Error")
    if isinstance(error, dict):
        code = _str_or_none(error.get("Code"))
        evidence.codes = (code,) if code else ()
        evidence.message = _str_or_none(error.get("Message"))


def _read_body(evidence: _Evidence, body: Any, *, nested: bool) -> None:
    if isinstance(body, list) and body:
        body = body[0]
    if isinstance(body, str):
        _read_text(evidence, body)
        return
    if not isinstance(body, dict):
        return
    # Gateways' own answers: Cloudflare's and Helicone's {"success": false}, Portkey's {"status": "failure"}.
    if body.get("success") is False or body.get("status") == "failure":
        evidence.gateway_own = True
    provider = body.get("provider")
    if isinstance(provider, str) and not nested:  # Portkey names the provider it passed the answer from
        evidence.upstream = canonical_name(provider)
    error = body.get("error")
    if isinstance(error, list) and error and isinstance(error[0], dict):  # Cloudflare: [{"code": 2009, ...}]
        error = {key: str(value) if key == "code" else value for key, value in error[0].items()}
    if isinstance(error, str):  # xAI: {"code": "<gRPC status text>", "error": "<message>"}
        _read_text(evidence, error)
        return
    if isinstance(error, int):
        evidence.body_status = _int_status(error)
    if isinstance(error, dict):
        body = error

    codes: list[str] = []
    details = body.get("details")
    if isinstance(details, dict):  # Anthropic: error.details.error_code
        _append_code(codes, details.get("error_code"), evidence.status)
    elif isinstance(details, list):  # Google: google.rpc status details
        _read_google_details(evidence, codes, details)
    metadata = body.get("metadata")
    if isinstance(metadata, dict) and not nested:
        _read_openrouter_metadata(evidence, codes, metadata)
    for key in ("code", "type", "status"):
        _append_code(codes, body.get(key), evidence.status)
    inner = body.get("innererror")
    if isinstance(inner, dict):  # Azure: the content filter's verdict
        _append_code(codes, inner.get("code"), evidence.status)
    code = body.get("code")
    if evidence.body_status is None and isinstance(code, int):
        evidence.body_status = _int_status(code)
    evidence.codes = (*evidence.codes, *codes)
    if evidence.message is None:
        message = _str_or_none(body.get("message")) or _str_or_none(body.get("detail"))
        if message is not None:
            _read_text(evidence, message)


def _read_openrouter_metadata(evidence: _Evidence, codes: list[str], metadata: dict[Any, Any]) -> None:
    raw = metadata.get("raw")
    if isinstance(raw, str) and raw:
        # The upstream provider's own answer: its codes and wording say more than "Provider returned error".
        upstream_body: Any = raw
        if raw[:256].lstrip()[:1] == "{" and len(raw) <= MAX_BODY_CHARS:
            try:
                upstream_body = json.loads(raw)
            except ValueError:
                upstream_body = raw
        _read_body(evidence, upstream_body, nested=True)
        codes.extend(evidence.codes)
        evidence.codes = ()
    name = metadata.get("provider_name")
    if metadata.get("is_byok") is True and isinstance(name, str):
        evidence.upstream = canonical_name(name)


def _read_text(evidence: _Evidence, text: str) -> None:
    """A message, a plain-text body or an HTML page; a page is summed up, never carried."""
    head = text[:512].lstrip()[:256].lower()
    if head.startswith(("<!doctype", "<html", "<head", "<body", "<?xml")) or "<html" in head:
        evidence.html = True
        # Servers sign their pages in the title or at the foot (Cloudflare's Ray ID, nginx's <hr>).
        window = (text[:1024] + text[-1024:]).lower()
        source = next((name for name in _HTML_SOURCES if name in window), None)
        status = f"HTTP {evidence.status}" if evidence.status is not None else "an answer"
        evidence.message = f"{status} (HTML page from {source})" if source else f"{status} (HTML page)"
        return
    evidence.message = text
    if text.startswith("litellm."):
        match = _gateways.LITELLM_PREFIX.match(text[:200])
        if match is not None:
            evidence.upstream = canonical_name(match.group(1))


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
