"""What one exception says about a failed LLM call, read by duck typing.

Nothing here imports an HTTP client or an SDK: the attributes that httpx, httpx2,
requests, aiohttp, botocore, the provider SDKs and wrapper libraries put on their
exceptions are read where they exist, and the body is parsed into codes, a message, a
status it states, and what a gateway says about itself or the provider behind it. What
those facts mean is decided in :mod:`byok_tasks.classification`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from .names import Reason
from .providers import by_module, canonical_name
from .providers import common as _common
from .providers import gateways as _gateways

__all__ = [
    "MAX_BODY_CHARS",
    "MOST_INFORMATIVE",
    "Evidence",
    "TypeFacts",
    "attribute",
    "read_safely",
    "safe_str",
    "str_or_none",
    "wanted_headers",
]

# Bounds that keep reading fast and safe on hostile input: bodies are a few hundred bytes.
MAX_BODY_CHARS = 64 * 1024
MAX_DETAILS = 16

# Exceptions from these packages are about an HTTP exchange even when they carry no
# request object; a TimeoutError from elsewhere (a database driver, say) is not an LLM failure.
_HTTP_CLIENT_PACKAGES = frozenset(
    {"httpx", "httpx2", "httpcore", "httpcore2", "requests", "urllib3", "aiohttp", "botocore"}
)
_TIMEOUT_NAMES = ("Timeout", "TimedOut")
_CONNECTION_NAMES = ("Connect", "NetworkError", "ProtocolError", "ServerDisconnected", "NoResponse")
# Markers of the servers and edges whose HTML error pages stand in for a provider's answer.
_HTML_SOURCES = tuple(
    (marker, marker.replace("cdn-cgi", "cloudflare"))
    for marker in ("cloudflare", "cdn-cgi", "openresty", "nginx", "awselb", "envoy", "akamai", "varnish", "apache")
)
# An HTTP status with the provider's code or message: the best an exception can offer.
MOST_INFORMATIVE = 3


@dataclass(frozen=True, slots=True)
class TypeFacts:
    qualified_name: str
    package: str
    transport: Reason | None
    # A wrapper library's exception class that names the cause (LiteLLM's ContextWindowExceededError).
    class_code: str | None = None


@dataclass(slots=True)
class Evidence:
    """What one exception of the chain says about the failed call."""

    exc: BaseException
    facts: TypeFacts
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


_TYPE_FACTS: dict[type[BaseException], TypeFacts] = {}
_TYPE_FACTS_LIMIT = 1024


def _type_facts(cls: type[BaseException]) -> TypeFacts:
    facts = _TYPE_FACTS.get(cls)
    if facts is None:
        facts = _read_type(cls)
        if len(_TYPE_FACTS) < _TYPE_FACTS_LIMIT:  # classes made on the fly must not grow it forever
            _TYPE_FACTS[cls] = facts
    return facts


def _read_type(cls: type[BaseException]) -> TypeFacts:
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
    class_code = next((name for name in names if name in _common.CLASS_CODES), None)
    return TypeFacts(f"{cls.__module__}.{cls.__qualname__}", package, transport, class_code)


def read_safely(exc: BaseException, told: bool) -> Evidence | None:
    # A hostile or half-built exception must not stop us from reading the others.
    try:
        return _read(exc, told)
    except Exception:
        return None


def _read(exc: BaseException, told: bool) -> Evidence | None:
    """What ``exc`` says; ``told`` when an llm_call said the failing code was an LLM call."""
    facts = _type_facts(type(exc))
    from_sdk = by_module(type(exc).__module__, None) is not None or facts.package in _HTTP_CLIENT_PACKAGES
    response = attribute(exc, "response")
    evidence = Evidence(exc=exc, facts=facts, weight=0)
    evidence.host, evidence.path = _host(exc, response)
    evidence.operation = str_or_none(attribute(exc, "operation_name"))

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
            _read_text(evidence, safe_str(exc))
        if facts.class_code is not None:
            evidence.codes = (*evidence.codes, facts.class_code)

    if evidence.status is not None:
        evidence.weight = MOST_INFORMATIVE if evidence.codes or evidence.message else 2
    elif facts.transport is not None:
        evidence.weight = 1
    elif from_sdk and by_module(type(exc).__module__, evidence.operation) is not None:
        evidence.weight = 1  # an SDK's own error without HTTP details: still the provider's failure
    else:
        return None
    return evidence


def attribute(obj: object, name: str) -> Any:
    try:
        return getattr(obj, name, None)
    except Exception:  # properties that raise: httpx's ``request`` before it is set
        return None


def str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _int_status(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and 100 <= value <= 599:
        return value
    return None


def _status(exc: BaseException, response: Any) -> int | None:
    # One at a time: aiohttp warns when its deprecated ``code`` is read.
    for name in ("status_code", "status", "code"):
        status = _int_status(attribute(exc, name))
        if status is not None:
            return status
    if isinstance(response, dict):
        metadata = response.get("ResponseMetadata")
        return _int_status(metadata.get("HTTPStatusCode")) if isinstance(metadata, dict) else None
    if response is not None:
        return _int_status(attribute(response, "status_code")) or _int_status(attribute(response, "status"))
    return None


def _headers(exc: BaseException, response: Any) -> Any:
    if isinstance(response, dict):
        metadata = response.get("ResponseMetadata")
        return metadata.get("HTTPHeaders") if isinstance(metadata, dict) else None
    headers = attribute(exc, "headers")
    if headers is None and response is not None:
        headers = attribute(response, "headers")
    return headers if attribute(headers, "items") is not None else None


_WANTED_HEADERS = frozenset(
    {"retry-after", "retry-after-ms", "x-request-id", "request-id", "x-amzn-requestid", "x-amzn-errortype"}
)
_WANTED_RAW_HEADERS = frozenset(name.encode() for name in _WANTED_HEADERS)


def wanted_headers(headers: Any) -> dict[str, str]:
    """The few headers we read, by lowercase name, in one pass over any header mapping."""
    wanted: dict[str, str] = {}
    if headers is None:
        return wanted
    try:
        # httpx's raw byte pairs are several times cheaper to scan than its decoded items.
        raw = None if isinstance(headers, dict) else attribute(headers, "raw")
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
    request = attribute(exc, "request")
    if request is None and response is not None and not isinstance(response, dict):
        request = attribute(response, "request")
    if request is None:
        raw_response = attribute(exc, "raw_response")  # mistralai
        request = attribute(raw_response, "request") if raw_response is not None else None
    if request is None:
        request = attribute(exc, "request_info")  # aiohttp
    url = attribute(request, "url") if request is not None else None
    if url is None:
        kwargs = attribute(exc, "kwargs")  # botocore: endpoint_url of transport errors
        url = kwargs.get("endpoint_url") if isinstance(kwargs, dict) else None
    if url is None:
        return None, None
    host = attribute(url, "host")  # httpx and yarl URLs
    if isinstance(host, str) and host:
        host = host.lower()
        return host, (str_or_none(attribute(url, "path")) if host in _PATH_HOSTS else None)
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
        body = attribute(exc, "body")
    if body is None:
        details = attribute(exc, "details")  # google-genai keeps the JSON body here
        if isinstance(details, (dict, list)):
            body = details
    if body is None and response is not None:
        # Only what the client already read: reading a streamed body here would be I/O.
        content = attribute(response, "_content")
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
    content = attribute(response, "_content") if response is not None else None
    return content[:MAX_BODY_CHARS].decode("utf-8", "replace") if isinstance(content, bytes) and content else None


def _read_botocore(evidence: Evidence, response: dict[Any, Any]) -> None:
    error = response.get("Error")
    if isinstance(error, dict):
        code = str_or_none(error.get("Code"))
        evidence.codes = (code,) if code else ()
        evidence.message = str_or_none(error.get("Message"))


def _read_body(evidence: Evidence, body: Any, *, nested: bool) -> None:
    if isinstance(body, list) and body:
        body = body[0]
    if isinstance(body, str):
        _read_text(evidence, body)
        return
    if not isinstance(body, dict):
        return
    if not nested:
        # Gateways' own answers: Cloudflare's and Helicone's {"success": false}, Portkey's {"status": "failure"}.
        if body.get("success") is False or body.get("status") == "failure":
            evidence.gateway_own = True
        provider = body.get("provider")
        if isinstance(provider, str):  # Portkey names the provider it passed the answer from
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
        message = str_or_none(body.get("message")) or str_or_none(body.get("detail"))
        if message is not None:
            _read_text(evidence, message)


def _read_openrouter_metadata(evidence: Evidence, codes: list[str], metadata: dict[Any, Any]) -> None:
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


def _read_text(evidence: Evidence, text: str) -> None:
    """A message, a plain-text body or an HTML page; a page is summed up, never carried."""
    head = text[:256]
    if "<" in head and _looks_like_html(head.lstrip().lower()):
        evidence.html = True
        source = _page_signature(text) or _server_name(evidence.headers)
        status = f"HTTP {evidence.status}" if evidence.status is not None else "an answer"
        evidence.message = f"{status} (HTML page from {source})" if source else f"{status} (HTML page)"
        return
    evidence.message = text
    if text.startswith("litellm."):
        match = _gateways.LITELLM_PREFIX.match(text[:200])
        if match is not None:
            evidence.upstream = canonical_name(match.group(1))


def _server_name(headers: Any) -> str | None:
    getter = attribute(headers, "get")
    try:
        server = getter("server") or getter("Server") if callable(getter) else None
    except Exception:
        return None
    if not isinstance(server, str) or not server:
        return None
    return server.split("/")[0].strip().lower()[:32] or None


def _page_signature(text: str) -> str | None:
    # Servers sign their pages in the head or at the foot (Cloudflare's Ray ID, nginx's <hr>).
    window = (text[:1024] + text[-1024:]).lower()
    return next((source for marker, source in _HTML_SOURCES if marker in window), None)


def _looks_like_html(head: str) -> bool:
    return head.startswith(("<!doctype", "<html", "<head", "<body", "<?xml")) or "<html" in head


def _append_code(codes: list[str], value: object, status: int | None) -> None:
    # OpenRouter and Azure repeat the HTTP status as the code: it adds nothing.
    if isinstance(value, str) and value and value not in codes and value != str(status):
        codes.append(value[:128])


def _read_google_details(evidence: Evidence, codes: list[str], details: list[Any]) -> None:
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
            evidence.retry_delay = str_or_none(detail.get("retryDelay"))
    evidence.quota_ids = tuple(quota_ids)


def safe_str(exc: BaseException) -> str:
    try:
        text = str(exc)
    except Exception:
        return ""
    return text if isinstance(text, str) else ""
