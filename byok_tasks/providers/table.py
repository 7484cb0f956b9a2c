"""The shape of a provider's table, and what an HTTP status means when nothing more specific does."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from ..names import Reason
from . import common

__all__ = ["DEFAULT_STATUSES", "ProviderTable"]


@dataclass(frozen=True, slots=True)
class ProviderTable:
    """How one provider reports failures.

    ``messages`` holds lowercase substrings of the provider's error message; they are read
    only when no structured code matched, because the wording changes between versions.
    ``sdk_operations``, when set, restricts ``sdk_modules`` to those operations: botocore
    raises the same exception classes for every AWS service, not only for Bedrock.
    """

    name: str
    hosts: frozenset[str] = frozenset()
    host_pattern: re.Pattern[str] | None = None
    sdk_modules: tuple[str, ...] = ()
    sdk_operations: frozenset[str] | None = None
    codes: Mapping[str, Reason] = field(default_factory=dict)
    quota_ids: tuple[tuple[str, Reason], ...] = ()
    messages: tuple[tuple[str, Reason], ...] = ()
    statuses: Mapping[int, Reason] = field(default_factory=dict)

    def reason_for_code(self, code: str) -> Reason | None:
        """What ``code`` means here, else in the vocabulary all providers share (:mod:`.common`).

        AWS event streams spell exception names with a lowercase initial
        (``throttlingException``): both spellings are the same code.
        """
        reason = self.codes.get(code) or common.CODES.get(code)
        if reason is None and code[:1].islower() and code.endswith("Exception"):
            capitalised = code[0].upper() + code[1:]
            reason = self.codes.get(capitalised) or common.CODES.get(capitalised)
        return reason

    def reason_for_status(self, status: int) -> Reason:
        reason = self.statuses.get(status) or DEFAULT_STATUSES.get(status)
        if reason is not None:
            return reason
        if 500 <= status < 600:
            return "server_error"
        if 400 <= status < 500:
            return "bad_request"
        return "unknown"


# What an HTTP status means from an LLM API when its body says nothing more specific.
DEFAULT_STATUSES: Mapping[int, Reason] = {
    400: "bad_request",
    401: "invalid_key",
    402: "quota",
    403: "permission",
    404: "model_not_found",
    408: "timeout",
    413: "context_length",
    422: "bad_request",
    429: "rate_limit",
    500: "server_error",
    502: "server_error",
    503: "overloaded",
    504: "timeout",
    529: "overloaded",
    # Cloudflare's own answers when the origin behind it fails: unknown error, origin down,
    # connection timed out, origin unreachable, timeout occurred, TLS handshake failed,
    # origin's name not resolved (530).
    520: "server_error",
    521: "connection",
    522: "timeout",
    523: "connection",
    524: "timeout",
    525: "connection",
    526: "connection",
    530: "connection",
}
