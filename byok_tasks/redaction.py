"""Remove provider keys and credentials from text bound for logs and error trackers.

Providers echo keys back in their error messages (OpenAI masks all but 12 characters;
Gemini echoes a suspended key whole), SDKs put request headers in exception text, and
URLs carry ``?key=``. One compiled alternation covers every shape, so the text is
scanned once however many shapes there are; this runs on every error event.

Some keys have no shape to recognise (Mistral's, Cohere's and Azure's are plain runs of
letters and digits). Every key this process handles (given to ``byok_context``, opened
from the sealed store, or answered by a resolver) is remembered by its SHA-256 only, and
:func:`redact` also replaces any word of the text whose hash is one of them.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections import OrderedDict

__all__ = ["REDACTED", "redact", "remember_key"]

REDACTED = "[REDACTED]"

# Where a credential is named, the value after the name goes, whatever it looks like.
# Each entry is a name's first letter and the rest of it (matched case-insensitively).
_CREDENTIAL_NAMES = (
    ("x", r"-goog-api-key|-api-key"),
    ("a", r"pi[-_]?key|uthorization|ccess[-_]token|ws[-_]secret[-_]access[-_]key|ws[-_]session[-_]token"),
    ("s", r"ecret[-_]?access[-_]?key|ession[-_]?token"),
)
# A value already redacted is left alone, so that redacting twice changes nothing.
_AFTER_NAME = (
    r"[\"']?\s*[:=]\s*[\"']?(?!(?i:(?:bearer|basic|token)\s+)?\[REDACTED\])"
    r"(?i:(?:bearer|basic|token)\s+)?(?P<{group}>[^\s\"',;&<>]{{1,4096}})"
)
_BEARER = r"(?i:earer)\s+(?P<{group}>[\w.~+/=-]{{8,4096}})"
_QUERY = r"(?i:key|api[-_]?key|access_token|token)=(?P<{group}>[^&#\s\"']{{1,4096}})"
# Keys recognised by their shape; ``*`` is in the alphabets so that masked echoes go
# too. Lengths are bounded so that hostile text cannot make a scan quadratic.
_SHAPED_KEYS = (
    r"sk-[\w*-]{16,4096}",  # OpenAI (sk-, sk-proj-, sk-svcacct-, sk-admin-), Anthropic, OpenRouter
    r"AIza[\w*-]{20,4096}",  # Google API keys
    r"ya29\.[\w.*-]{20,4096}",  # Google OAuth access tokens
    r"gsk_[A-Za-z0-9*]{20,4096}",  # Groq
    r"xai-[A-Za-z0-9*]{20,4096}",  # xAI
    r"hf_[A-Za-z0-9*]{20,4096}",  # Hugging Face
    r"A(?:KIA|SIA|BIA|CCA|IDA|ROA|GPA|NPA|NVA|IPA)[A-Z0-9]{16}(?![A-Za-z0-9])",  # AWS access key ids
)


def _alternatives() -> list[str]:
    # Every alternative starts with a literal character, so that the regex engine can
    # skip straight to the positions where one of them may begin: that is what keeps a
    # dozen shapes at a few microseconds per message. A group name may appear only once
    # in a pattern, hence the numbered ones; the value's group tells what matched.
    alternatives: list[str] = []
    for first, rest in _CREDENTIAL_NAMES:
        for letter in (first, first.upper()):
            group = f"named{len(alternatives)}"
            alternatives.append(f"{letter}(?i:{rest}){_AFTER_NAME.format(group=group)}")
    alternatives += [f"{letter}{_BEARER.format(group='bearer' + letter)}" for letter in "bB"]
    alternatives += [f"\\{separator}{_QUERY.format(group=_QUERY_GROUPS[separator])}" for separator in "?&"]
    alternatives += list(_SHAPED_KEYS)
    return alternatives


_QUERY_GROUPS = {"?": "query_first", "&": "query_next"}
_PATTERN = re.compile("|".join(_alternatives()))


def _glued_to_a_word(match: re.Match[str], secret: str | None) -> bool:
    # "task-..." is not an OpenAI key, nor "xapi_key" a credential name (OPENAI_API_KEY
    # is). Shapes with a distinctive prefix (AIza, gsk_, ...) are redacted wherever they stand.
    start = match.start()
    if start == 0 or not match.string[start - 1].isalnum():
        return False
    if secret is None:
        return match.string.startswith("sk-", start)
    return secret not in _QUERY_GROUPS.values()


# Words that could be a key: the alphabet of API keys, long enough to be one.
_WORD = re.compile(r"[A-Za-z0-9_\-.~+/]{16,4096}")
_SHORTEST_KEY = 16
# Hashes of the keys this process has handled, the most recent last; a hash tells nothing.
_fingerprints: OrderedDict[bytes, None] = OrderedDict()
_FINGERPRINTS_KEPT = 4096
_fingerprints_lock = threading.Lock()


def _fingerprint(word: str) -> bytes:
    return hashlib.sha256(word.encode()).digest()


def remember_key(key: str) -> None:
    """From now on, redact ``key`` wherever it stands as a word of its own, whatever its shape."""
    if len(key) < _SHORTEST_KEY:
        return
    fingerprint = _fingerprint(key)
    with _fingerprints_lock:
        _fingerprints[fingerprint] = None
        _fingerprints.move_to_end(fingerprint)
        while len(_fingerprints) > _FINGERPRINTS_KEPT:
            _fingerprints.popitem(last=False)


def _remembered(match: re.Match[str]) -> str:
    word = match.group(0)
    # A word at the end of a sentence or a path carries the punctuation with it.
    for candidate in (word, word.strip(".-/+~")):
        if _fingerprint(candidate) in _fingerprints:
            return word.replace(candidate, REDACTED)
    return word


def redact(text: str) -> str:
    """``text`` with every key, token and secret replaced by ``[REDACTED]``."""
    if _fingerprints:
        text = _WORD.sub(_remembered, text)
    match = _PATTERN.search(text)
    if match is None:
        return text
    parts = []
    position = 0
    while match is not None:
        secret = match.lastgroup  # the group holding a named value; None for a shaped key
        if _glued_to_a_word(match, secret):
            # Not a match here, but a key may start inside it: look again one character on.
            match = _PATTERN.search(text, match.start() + 1)
            continue
        kept_until = match.start(secret) if secret is not None else match.start()
        parts.append(text[position:kept_until])
        parts.append(REDACTED)
        position = match.end()
        match = _PATTERN.search(text, position)
    parts.append(text[position:])
    return "".join(parts)
