"""The header codec: a BYOK context as one short, versioned, optionally signed string.

Wire format, version 1::

    1.<payload>[.<signature>]

``payload`` is base64url (unpadded) of compact JSON::

    {"u": uid, "p": [providers], "t": issued_at, "d": scheduled_delay, "k": sealed_keys_ref}

(``d`` only for tasks with an ETA or countdown, ``k`` only when keys were sealed);
``signature`` is base64url of HMAC-SHA256 over ``1.<payload>`` with the shared secret.
One ASCII string survives every Celery serializer, AMQP header tables and RQ's job
hash unchanged, and signing the encoded bytes avoids any canonicalisation question.
Only the uid, provider names and a reference to sealed keys travel; keys never do.

Replay: a copied header stays valid only ``max_age`` seconds after ``t`` (default 7 days),
plus the task's own scheduled delay, which is signed with it so that a copy cannot
claim a longer one. ``CLOCK_SKEW`` seconds of disagreement between the publisher's and
the worker's clocks are tolerated either way. A retry carries its task's header as it
was, issue time included: ``max_age`` bounds the whole life of a task, retries and all.
"""

from __future__ import annotations

import binascii
import functools
import hashlib
import hmac
import json
import logging
import math
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeGuard

from ._exceptions import HeaderError
from ._words import a_value_of_type
from .context import ByokContext
from .keyring import Keyring, is_reference
from .names import well_formed_providers

__all__ = ["HEADER", "SECRET_ENV", "HeaderCodec", "HeaderError", "why_refused"]

logger = logging.getLogger(__name__)

HEADER = "byok"
SECRET_ENV = "BYOK_TASKS_SECRET"
VERSION = "1"
# A typical header is about 170 bytes; anything this long was not written by us.
MAX_HEADER_LENGTH = 1024
DEFAULT_MAX_AGE = 7 * 24 * 3600.0
CLOCK_SKEW = 300.0


def why_refused(exc: Exception) -> str:
    """What to log about a header :meth:`HeaderCodec.decode` refused with ``exc``.

    A HeaderError says what was wrong. Anything else would be a bug of ours: no reason to
    stop a worker, every reason not to trust the header, and nothing of it worth quoting.
    """
    return str(exc) if isinstance(exc, HeaderError) else "header could not be read"


_TO_URLSAFE = bytes.maketrans(b"+/", b"-_")
_FROM_URLSAFE = bytes.maketrans(b"-_", b"+/")


def _b64encode(data: bytes) -> str:
    # base64.urlsafe_b64encode, without its two layers of Python calls: one header makes two.
    return binascii.b2a_base64(data, newline=False).translate(_TO_URLSAFE).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    # base64.urlsafe_b64decode, without its two layers of argument handling (text is ASCII
    # here). Two "=" always: a2b_base64 stops at the padding a quantum needs and skips the rest.
    return binascii.a2b_base64(text.encode("ascii").translate(_FROM_URLSAFE) + b"==")


@dataclass(frozen=True)
class HeaderCodec:
    """Encodes contexts on the publishing side and checks them on the worker side.

    ``secrets[0]`` signs; any of ``secrets`` verifies, so a secret can be rotated by
    deploying ``[new, old]`` everywhere before dropping ``old``.
    """

    secrets: tuple[bytes, ...] = field(default=(), repr=False)  # a repr in a stack frame must not carry them
    require_signature: bool = False
    max_age: float = DEFAULT_MAX_AGE
    clock: Callable[[], float] = field(default=time.time, compare=False, repr=False)
    # One signer per secret, keyed once.
    _macs: tuple[_Signer, ...] = field(init=False, compare=False, repr=False)
    # The last header encoded, and what it was made from: the tasks a request enqueues, a
    # group, and the same user's requests within a second share one encoding. One pair,
    # replaced whole, so threads are safe.
    _last: tuple[tuple[object, ...], str] = field(init=False, compare=False, repr=False, default=((), ""))
    # Headers already verified and parsed, to what they said: the tasks of one request, of
    # a group, and retries share a header. Only the age check is repeated; bounded by
    # starting afresh when full.
    _verified: dict[str, tuple[ByokContext, float, float, str | None]] = field(
        init=False, compare=False, repr=False, default_factory=dict
    )
    _warned_unverified: bool = field(init=False, compare=False, repr=False, default=False)

    def __post_init__(self) -> None:
        if self.require_signature and not self.secrets:
            raise ValueError(
                f"require_signature=True needs a secret (argument or {SECRET_ENV}) to check signatures with"
            )
        if self.max_age <= 0:
            raise ValueError("max_age must be positive")
        object.__setattr__(self, "_macs", tuple(_Signer(secret) for secret in self.secrets))

    @classmethod
    def configure(
        cls,
        secret: str | bytes | Sequence[str | bytes] | None = None,
        *,
        require_signature: bool = False,
        max_age: float = DEFAULT_MAX_AGE,
    ) -> HeaderCodec:
        """Build a codec from ``install(...)`` arguments, falling back to ``BYOK_TASKS_SECRET``."""
        if secret is None:
            secret = os.environ.get(SECRET_ENV) or None
        if secret is None:
            secrets: tuple[bytes, ...] = ()
        elif isinstance(secret, (str, bytes)):
            secrets = (_secret_bytes(secret),)
        else:
            secrets = tuple(_secret_bytes(s) for s in secret)
        return cls(secrets, require_signature, max_age)

    def encode(self, context: ByokContext, *, delay: float = 0.0) -> str:
        """The header for ``context``, for a task that will run ``delay`` seconds from now."""
        issued = int(self.clock())
        scheduled = int(delay) + 1 if delay > 0 else 0
        ref = context.keyring.ref if context.keyring is not None else None
        # The values, not the context: the context's keyring must not outlive its block here.
        made_from = (context.uid, context.providers, issued, scheduled, ref)
        last = self._last
        if last[0] == made_from:
            return last[1]
        # Provider names and references are validated to need no JSON escaping; the uid may.
        payload = f'{{"u":{_json_string(context.uid)},"p":[{_providers_json(context.providers)}],"t":{issued}'
        if scheduled:
            payload += f',"d":{scheduled}'
        if ref is not None:
            payload += f',"k":"{ref}"'
        payload += "}"
        header = signed = f"{VERSION}.{_b64encode(payload.encode())}"
        if self._macs:
            header = f"{signed}.{self._macs[0].sign(signed)}"
        object.__setattr__(self, "_last", (made_from, header))
        return header

    def decode(self, value: object) -> ByokContext:
        """The context in ``value``; :class:`HeaderError` if it is not a header this codec may trust."""
        if isinstance(value, str) and (verified := self._verified.get(value)) is not None:
            return self._in_date(*verified)
        if isinstance(value, bytes):
            try:
                value = value.decode("utf-8")
            except UnicodeDecodeError:
                raise HeaderError("header is not valid UTF-8") from None
        if not isinstance(value, str):
            raise HeaderError(f"header is {a_value_of_type(value)}, expected a string")
        if not value.isascii():
            raise HeaderError("header has characters no byok-tasks header has")
        if len(value) > MAX_HEADER_LENGTH:
            raise HeaderError(f"header is {len(value)} characters long, over the limit of {MAX_HEADER_LENGTH}")
        parts = value.split(".")
        if parts[0] != VERSION:
            raise HeaderError("header has an unknown version or is not a byok-tasks header")
        if len(parts) not in (2, 3):
            raise HeaderError("header is malformed")
        if len(parts) == 3 and self._macs:
            signed = f"{parts[0]}.{parts[1]}"
            for mac in self._macs:
                if hmac.compare_digest(mac.sign(signed), parts[2]):
                    break
            else:
                raise HeaderError("header signature does not match: tampered, or signed with another secret")
        elif self.require_signature:
            raise HeaderError("header is unsigned and this worker requires signed headers")
        elif len(parts) == 3 and not self._warned_unverified:
            # Signed by a publisher that has the secret, accepted unchecked by a worker that
            # lost it: a deploy mistake that would otherwise go unnoticed. Said once.
            object.__setattr__(self, "_warned_unverified", True)
            logger.warning(
                "a signed BYOK header arrived, but this process has no secret (BYOK_TASKS_SECRET) to check it "
                "with: signatures are not verified; give workers the publishers' secret and require_signature=True"
            )
        verified = _parse_payload(parts[1])
        if len(self._verified) >= _VERIFIED_CACHE_SIZE:
            self._verified.clear()
        self._verified[value] = verified
        return self._in_date(*verified)

    def _in_date(self, context: ByokContext, issued: float, delay: float, ref: str | None) -> ByokContext:
        """``context``, if its header is neither expired nor from the future, with a keyring of its own."""
        age = self.clock() - issued
        if age < -CLOCK_SKEW:
            raise HeaderError(
                f"header was issued {-age:.0f} s in the future, beyond the {CLOCK_SKEW:g} s tolerated "
                "between clocks: a clock is wrong, or the header was forged"
            )
        if age > self.max_age + delay + CLOCK_SKEW:
            allowance = f"max_age of {_hours(self.max_age)}" + (f" plus its {_hours(delay)} delay" if delay else "")
            raise HeaderError(f"header expired: issued {_hours(age)} ago, beyond its {allowance}")
        # A keyring holds the keys its task opens, so each task gets its own; a context without one is shared.
        return context if ref is None else ByokContext(context.uid, context.providers, Keyring(ref=ref))


# The key's block-sized pad, XORed with HMAC's inner and outer constants (RFC 2104).
_INNER_PAD = bytes(byte ^ 0x36 for byte in range(256))
_OUTER_PAD = bytes(byte ^ 0x5C for byte in range(256))


class _Signer:
    """HMAC-SHA256 (RFC 2104) of a header, base64url, with the key's two hash states computed once.

    The hmac module's objects go through OpenSSL's HMAC, whose set-up on every copy cost
    2.2 µs a header here, against 0.85 for copying two SHA-256 states; the bytes are the same.
    """

    __slots__ = ("_inner", "_outer")

    def __init__(self, secret: bytes) -> None:
        block = hashlib.sha256().block_size
        key = (hashlib.sha256(secret).digest() if len(secret) > block else secret).ljust(block, b"\0")
        self._inner = hashlib.sha256(key.translate(_INNER_PAD))
        self._outer = hashlib.sha256(key.translate(_OUTER_PAD))

    def sign(self, signed: str) -> str:
        inner = self._inner.copy()
        inner.update(signed.encode("ascii"))
        outer = self._outer.copy()
        outer.update(inner.digest())
        return _b64encode(outer.digest())


_json_string: Callable[[str], str] = json.encoder.encode_basestring
_json_decoder = json.JSONDecoder()
# The C scanner the decoder made for itself (typeshed does not declare the attribute).
_json_scan: Callable[[str, int], tuple[Any, int]] = vars(_json_decoder)["scan_once"]
_VERIFIED_CACHE_SIZE = 1024


def _json_object(text: str) -> Any:
    # The scanner alone reads what our encoder writes, compact, at half the full decoder's
    # cost; the full decoder takes whatever else comes, and says what is wrong with it.
    try:
        value, end = _json_scan(text, 0)
    except StopIteration:
        end = -1
    return value if end == len(text) else _json_decoder.decode(text)


@functools.lru_cache(maxsize=256)
def _providers_json(providers: frozenset[str]) -> str:
    """The header's provider list, sorted: a deployment has a handful of provider sets."""
    return ",".join(f'"{name}"' for name in sorted(providers))


# A payload as the encoder writes it: a uid that needs no escaping, the provider list, the
# issue time, then the delay and the sealed-keys reference when there are any. One match reads
# it, and a new header's decode costs an eighth less than through json's scanner and a check
# per field; anything else (an escaped uid, another order, spaces) goes to _parse_fields.
_ENCODED = re.compile(
    r'\{"u":"([^"\\\x00-\x1f]+)","p":\[([^\]]*)\],"t":(0|[1-9][0-9]{0,15})'
    r'(?:,"d":(0|[1-9][0-9]{0,15}))?(?:,"k":"([^"\\\x00-\x1f]*)")?\}'
)
# The provider lists of headers read, as written, to their checked sets: a deployment has a
# handful. Bounded by starting afresh when full.
_provider_lists: dict[str, frozenset[str]] = {}
_PROVIDER_LISTS_SIZE = 256


def _parse_payload(text: str) -> tuple[ByokContext, float, float, str | None]:
    """A verified payload's context (keyring aside), issue time, scheduled delay and sealed-keys reference."""
    try:
        # str, not bytes: json.loads would first guess the bytes' encoding, on every header.
        payload = _b64decode(text).decode("utf-8")
    except (binascii.Error, ValueError):
        # json's UnicodeDecodeError is a ValueError.
        raise HeaderError("header payload is not base64-encoded JSON") from None
    encoded = _ENCODED.fullmatch(payload)
    if encoded is None:
        return _parse_fields(payload)
    uid, listed, issued, delay, ref = encoded.groups()
    # In _parse_fields' order, so that a payload with two faults is refused for the same one.
    if ref is not None and not is_reference(ref):
        raise HeaderError("header payload has an invalid sealed-keys reference")
    providers = _provider_lists.get(listed)
    if providers is None:
        providers = _provider_list(listed)
    try:
        return ByokContext(uid, providers), int(issued), int(delay) if delay else 0, ref
    except ValueError:
        raise HeaderError("header payload has an invalid uid or provider list") from None


def _provider_list(listed: str) -> frozenset[str]:
    """The checked set of the provider names ``listed`` (the inside of the header's JSON list)."""
    try:
        providers = well_formed_providers(_json_object(f"[{listed}]"))
    except (TypeError, ValueError):
        raise HeaderError("header payload has an invalid uid or provider list") from None
    if len(_provider_lists) >= _PROVIDER_LISTS_SIZE:
        _provider_lists.clear()
    _provider_lists[listed] = providers
    return providers


def _parse_fields(payload: str) -> tuple[ByokContext, float, float, str | None]:
    """:func:`_parse_payload` for any other JSON, checked field by field."""
    try:
        fields = _json_object(payload)
    except ValueError:
        raise HeaderError("header payload is not base64-encoded JSON") from None
    if not isinstance(fields, dict):
        raise HeaderError("header payload is not an object")
    uid, providers, ref = fields.get("u"), fields.get("p", []), fields.get("k")
    if not isinstance(uid, str) or not isinstance(providers, list):
        raise HeaderError("header payload has an invalid uid or provider list")
    issued, delay = fields.get("t"), fields.get("d", 0)
    if not _is_number(issued):
        raise HeaderError("header payload has no valid issue time")
    if not _is_number(delay) or delay < 0:
        raise HeaderError("header payload has an invalid scheduled delay")
    if ref is not None and not is_reference(ref):
        raise HeaderError("header payload has an invalid sealed-keys reference")
    try:
        return ByokContext(uid, frozenset(providers)), issued, delay, ref
    except (TypeError, ValueError):
        raise HeaderError("header payload has an invalid uid or provider list") from None


def _secret_bytes(secret: str | bytes) -> bytes:
    data = secret.encode() if isinstance(secret, str) else secret
    if not data:
        raise ValueError("the BYOK header secret must not be empty")
    return data


def _is_number(value: object) -> TypeGuard[float]:
    # json accepts NaN, Infinity and integers of any size; an infinite delay would make a
    # header valid forever, and one too large for a float overflows.
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h"
