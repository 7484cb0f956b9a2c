"""What each LLM provider's failures look like: one table per provider, one module each.

A table says how to recognise the provider (request hosts, the SDK's module) and how its
structured error fields map to a reason; :mod:`.common` holds the vocabulary all of them
share. The order in which the fields are read is written once, in
:func:`byok_tasks.classification._reason`. Teams add their own provider or in-house
gateway with :func:`register_provider`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any, get_args
from urllib.parse import urlsplit

from .._exceptions import ProviderRegistrationError
from ..names import Reason, well_formed_provider
from ..redaction import redact
from . import (
    anthropic,
    azure_openai,
    bedrock,
    cerebras,
    cohere,
    dashscope,
    deepseek,
    fireworks,
    gateways,
    google,
    groq,
    mistral,
    openai,
    openrouter,
    perplexity,
    together,
    xai,
)
from .table import DEFAULT_STATUSES, ProviderTable

__all__ = [
    "DEFAULT_STATUSES",
    "GATEWAYS",
    "PROVIDERS",
    "UNKNOWN",
    "ProviderRegistrationError",
    "ProviderTable",
    "by_host",
    "by_module",
    "by_name",
    "canonical_name",
    "name_for_host",
    "provider_name",
    "register_provider",
    "warn_about_unknown",
]

# The logger these warnings have always come from, and teams filter by.
logger = logging.getLogger("byok_tasks.context")

# The providers, and the providers registered with register_provider: the names
# byok_context knows, and (built-in ones) the web middleware's default key headers.
BUILT_IN: tuple[ProviderTable, ...] = (
    openai.TABLE,
    azure_openai.TABLE,
    anthropic.TABLE,
    google.TABLE,
    openrouter.TABLE,
    groq.TABLE,
    mistral.TABLE,
    cohere.TABLE,
    bedrock.TABLE,
    xai.TABLE,
    deepseek.TABLE,
    together.TABLE,
    fireworks.TABLE,
    perplexity.TABLE,
    cerebras.TABLE,
    dashscope.TABLE,
)
# Rebound (never mutated) by register_provider, so that a reader holding the old tuple keeps a consistent one.
PROVIDERS: tuple[ProviderTable, ...] = BUILT_IN
# Gateways in front of providers: their own failures (key, budget) are theirs.
GATEWAYS: tuple[ProviderTable, ...] = (gateways.LITELLM, gateways.CLOUDFLARE, gateways.HELICONE, gateways.PORTKEY)

# Errors from a provider nobody named still get the reading any LLM API would get.
UNKNOWN = ProviderTable(name="unknown")

_BY_NAME: dict[str, ProviderTable] = {}
_BY_HOST: dict[str, ProviderTable] = {}
_HOST_PATTERNS: tuple[ProviderTable, ...] = ()


def _index() -> None:
    # Built aside and swapped in whole: a classification running meanwhile sees the old index or the new one.
    global _BY_NAME, _BY_HOST, _HOST_PATTERNS
    tables = (*GATEWAYS, *PROVIDERS)
    _BY_NAME = {table.name: table for table in tables}
    _BY_HOST = {host: table for table in tables for host in table.hosts}
    _HOST_PATTERNS = tuple(table for table in tables if table.host_pattern is not None)
    by_host.cache_clear()


def by_name(name: str) -> ProviderTable:
    """The table for ``name``; a provider without one is read like any LLM API."""
    return _BY_NAME.get(name) or _plain_table(name)


@lru_cache(maxsize=256)
def _plain_table(name: str) -> ProviderTable:
    return ProviderTable(name=name)


@lru_cache(maxsize=256)
def by_host(host: str) -> ProviderTable | None:
    """The provider serving requests to ``host``, if it has a table."""
    host = host.lower().rstrip(".")
    table = _BY_HOST.get(host)
    if table is not None:
        return table
    for candidate in _HOST_PATTERNS:
        if candidate.host_pattern is not None and candidate.host_pattern.fullmatch(host):
            return candidate
    return None


@lru_cache(maxsize=256)
def by_module(module: str, operation: str | None) -> ProviderTable | None:
    """The provider whose SDK raised an exception defined in ``module``."""
    for table in BUILT_IN:
        for prefix in table.sdk_modules:
            in_sdk = module == prefix or module.startswith(prefix + ".")
            if in_sdk and (table.sdk_operations is None or operation in table.sdk_operations):
                return table
    return None


# Labels that say what a host does, not whose it is, and the domains reserved for
# documentation (RFC 2606): never a provider's name.
_NOT_NAMES = frozenset(
    {"api", "apis", "www", "inference", "llm", "llms", "ai", "gateway", "gw", "proxy", "openai", "v1", "prod"}
    | {"example", "test", "invalid", "localhost", "local", "internal", "lan", "home", "corp"}
)
# Second-level labels of two-label public suffixes (acme.co.uk, acme.com.cn).
_SECOND_LEVEL = frozenset({"co", "com", "net", "org", "ac", "gov", "edu", "ne", "or"})
_IP_ADDRESS = re.compile(r"[0-9.]+|\[?[0-9a-f:]+\]?")
_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,31}")


@lru_cache(maxsize=256)
def name_for_host(host: str) -> str | None:
    """The provider name for a host no table claims: its registrable name.

    The rule: drop the public suffix (``com``, ``ai``, or two labels such as ``co.uk``);
    the label left of it, the one its owner registered, is the name. Where that label is
    not an owner's name — a domain reserved for documentation (``example.com``) or a word
    for a service (``api``, ``gateway``) — the next label to its left is tried. So
    ``api.deepseek.com`` is ``deepseek``, ``integrate.api.nvidia.com`` is ``nvidia``,
    ``api.foo-ai.example.com`` is ``foo-ai``. IP addresses and ``localhost`` name no one:
    ``None``.
    """
    host = host.lower().rstrip(".")
    if not host or host == "localhost" or _IP_ADDRESS.fullmatch(host):
        return None
    labels = host.split(".")
    if len(labels) > 1:
        labels.pop()
    if len(labels) > 1 and labels[-1] in _SECOND_LEVEL:
        labels.pop()
    for label in reversed(labels):
        if label not in _NOT_NAMES and _NAME.fullmatch(label):
            return label
    return None


def canonical_name(name: str) -> str | None:
    """Our name for a provider as gateways and wrapper libraries write it ("Amazon Bedrock", "vertex_ai")."""
    squashed = re.sub(r"[\s_.-]+", "", name.lower())[:64]
    if not squashed:
        return None
    alias = gateways.ALIASES.get(squashed)
    if alias is not None:
        return alias
    for table in (*PROVIDERS, *GATEWAYS):
        if table.name.replace("_", "") == squashed:
            return table.name
    return squashed[:32] if _NAME.fullmatch(squashed[:32]) else None


_REASONS = frozenset(get_args(Reason))
_HOST = re.compile(r"(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


def register_provider(
    name: str,
    *,
    hosts: Iterable[str] = (),
    base_url: str | None = None,
    codes: Mapping[str, Reason] | None = None,
    messages: Mapping[str, Reason] | None = None,
    statuses: Mapping[int, Reason] | None = None,
) -> ProviderTable:
    """Teach byok-tasks a provider or in-house gateway: its name, where it is served, what its errors mean.

    ``hosts`` and the host of ``base_url`` are where requests to it go. ``codes`` maps the
    values of its bodies' ``code``/``type`` fields to reasons, ``statuses`` its own HTTP
    statuses, ``messages`` lowercase fragments of its messages (read only when no code
    matches). Classification reads them in the same order as for the built-in tables, and
    falls back to the vocabulary all providers share. Registering a name again replaces
    its table; a built-in provider cannot be replaced. Returns the table; raises
    :class:`ProviderRegistrationError` on input it cannot use.
    """
    global PROVIDERS
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ProviderRegistrationError("name must be up to 32 lowercase letters, digits, '_', '.', '-'")
    if any(table.name == name for table in (*BUILT_IN, *GATEWAYS)):
        raise ProviderRegistrationError(f"{name!r} is built in; register your own name for a variant of it")
    if isinstance(hosts, str):
        raise ProviderRegistrationError("hosts must be a collection of host names, not a single string")
    host_set = {_checked_host(host) for host in hosts}
    if base_url is not None:
        host_set.add(_host_of(base_url))
    if not host_set:
        raise ProviderRegistrationError("give hosts or base_url: where requests to this provider go")
    table = ProviderTable(
        name=name,
        hosts=frozenset(host_set),
        codes=_checked_reasons("codes", codes or {}, str),
        messages=tuple(
            (fragment.lower(), reason) for fragment, reason in _checked_reasons("messages", messages or {}, str).items()
        ),
        statuses=_checked_reasons("statuses", statuses or {}, int),
    )
    PROVIDERS = (*(existing for existing in PROVIDERS if existing.name != name), table)
    _index()
    name_for_host.cache_clear()
    return table


def _checked_host(host: object) -> str:
    if not isinstance(host, str) or not _HOST.fullmatch(host.lower().rstrip(".")):
        raise ProviderRegistrationError(f"not a host name: {host!r} (give 'api.example.com', no scheme or path)")
    return host.lower().rstrip(".")


def _host_of(base_url: object) -> str:
    if not isinstance(base_url, str):
        raise ProviderRegistrationError("base_url must be a URL string such as 'https://llm.example.com/v1'")
    try:
        host = urlsplit(base_url).hostname
    except ValueError:
        host = None
    if not host:
        raise ProviderRegistrationError(f"base_url has no host: {base_url!r}")
    return _checked_host(host)


def _checked_reasons(field: str, mapping: object, key_type: type) -> dict[Any, Reason]:
    if not isinstance(mapping, Mapping):
        raise ProviderRegistrationError(f"{field} must be a mapping to reasons")
    checked: dict[Any, Reason] = {}
    for key, reason in mapping.items():
        if not isinstance(key, key_type) or isinstance(key, bool) or (isinstance(key, str) and not key):
            raise ProviderRegistrationError(
                f"{field}: keys must be {'non-empty strings' if key_type is str else 'ints'}, not {key!r}"
            )
        if isinstance(key, int) and not 100 <= key <= 599:
            raise ProviderRegistrationError(f"statuses: {key} is not an HTTP status")
        if reason not in _REASONS:
            raise ProviderRegistrationError(
                f"{field}[{key!r}]: {reason!r} is not a reason; use one of {', '.join(sorted(_REASONS))}"
            )
        checked[key] = reason
    return checked


def provider_name(name: object) -> str:
    """``name`` if it is a well-formed provider name, else ValueError; warns once about a name no table knows.

    Every API that takes a provider name goes through here, so that ``"OpenAI"`` is the
    same error everywhere: a name that never matches a failing call's provider would file
    the user's failures as the platform's, or spend the platform's key.
    """
    warn_about_unknown(frozenset((well_formed_provider(name),)))
    return name  # type: ignore[return-value]


# Provider names with a table, and the unknown ones already warned about.
_known_or_warned: set[str] = set()


def warn_about_unknown(providers: frozenset[str]) -> None:
    """Warn, once per name, about BYOK provider names no table has ("azure" for "azure_openai").

    Such a name matches a failing call's provider only when the call's host is named after it.
    """
    if providers <= _known_or_warned:
        return
    known = {table.name for table in (*PROVIDERS, *GATEWAYS)}
    for name in sorted(providers - known - _known_or_warned):
        logger.warning(
            "BYOK provider %r has no table in byok-tasks (%s): its failures count as the user's only when the "
            "failing host is named after it (api.<name>.com), llm_call(...) names it, or register_provider() adds it",
            # A lowercase key passes for a provider name; given in its place, it must not be logged.
            redact(name),
            ", ".join(sorted(known)),
        )
    _known_or_warned.update(known, providers)


_index()
