"""Headers that must not be trusted, as a forger with access to the broker would write them.

The cases of the Celery and RQ bad-header tests, for message formats that carry JSON:
the non-UTF-8 header is a string of lone surrogates (what a JSON message can hold of
bytes that are no text), not bytes.
"""

from __future__ import annotations

import base64
import json
import time

from byok_tasks import ByokContext
from byok_tasks.header import HeaderCodec
from tests.support.celery_worker import SECRET

signed = HeaderCodec.configure(SECRET)
ALICE = signed.encode(ByokContext("alice", frozenset({"openai"})))
MALLORY_PAYLOAD = signed.encode(ByokContext("mallory", frozenset({"openai"}))).split(".")[1]


def _payload(fields: object) -> str:
    return "1." + base64.urlsafe_b64encode(json.dumps(fields).encode()).decode().rstrip("=")


def _signed_at(issued: float) -> str:
    codec = HeaderCodec((SECRET.encode(),), clock=lambda: issued)
    return codec.encode(ByokContext("mallory", frozenset({"openai"})))


BAD_HEADERS: dict[str, object] = {
    # Alice's signature on Mallory's payload: the classic tampering.
    "tampered": ".".join([ALICE.split(".")[0], MALLORY_PAYLOAD, ALICE.split(".")[2]]),
    "signed with another secret": HeaderCodec.configure("another-secret").encode(ByokContext("mallory")),
    "malformed base64": "1.@@not-base64@@." + ALICE.split(".")[2],
    "not JSON": "1." + base64.urlsafe_b64encode(b"{{{").decode(),
    "payload not an object": _payload(["mallory"]),
    "uid missing": _payload({"p": ["openai"]}),
    "uid not a string": _payload({"u": 42, "p": []}),
    "providers not a list": _payload({"u": "mallory", "p": "openai"}),
    "oversized": "1." + "A" * 100_000,
    "non-UTF-8 (lone surrogates)": "1.\udcff\udcfe\udcfd",
    "wrongly typed (int)": 12345,
    "wrongly typed (dict)": {"u": "mallory"},
    "wrongly typed (list)": ["mallory", ["openai"]],
    "foreign (a JWT)": "eyJhbGciOiJIUzI1NiJ9.eyJ1IjoibWFsbG9yeSJ9.c2lnbmF0dXJl",
    "unknown version": "2." + MALLORY_PAYLOAD,
    "non-ASCII signature": ALICE.rsplit(".", 1)[0] + ".é" + ALICE.rsplit(".", 1)[1][1:],
    "non-ASCII payload": "1.é" + MALLORY_PAYLOAD,
    "issue time too large for a float": _payload({"u": "mallory", "p": [], "t": 10**400}),
    "expired (issued 8 days ago, signed)": _signed_at(time.time() - 8 * 24 * 3600),
    "issued in the future (signed)": _signed_at(time.time() + 3600),
}


def raw_header_in(text: str, header: object) -> bool:
    """Whether ``text`` echoes ``header`` (headers too short to tell apart do not count)."""
    value = header if isinstance(header, str) else json.dumps(header)
    return len(value) > 8 and value in text
