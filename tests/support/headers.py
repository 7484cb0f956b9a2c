"""Headers a worker cannot trust, as they come on the wire, and how a test forges one."""

from __future__ import annotations

import base64
import json

from byok_tasks import ByokContext
from byok_tasks.header import HeaderCodec
from tests.support.celery_worker import SECRET

signed = HeaderCodec.configure(SECRET)
ALICE = signed.encode(ByokContext("alice", frozenset({"openai"})))
MALLORY_PAYLOAD = signed.encode(ByokContext("mallory", frozenset({"openai"}))).split(".")[1]


def _payload(fields: object) -> str:
    return "1." + base64.urlsafe_b64encode(json.dumps(fields).encode()).decode().rstrip("=")


BAD_HEADERS = {
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
    "non-UTF-8": b"1.\xff\xfe\xfd",
    "wrongly typed (int)": 12345,
    "wrongly typed (dict)": {"u": "mallory"},
    "foreign (a JWT)": "eyJhbGciOiJIUzI1NiJ9.eyJ1IjoibWFsbG9yeSJ9.c2lnbmF0dXJl",
    "unknown version": "2." + MALLORY_PAYLOAD,
    "non-ASCII signature": ALICE.rsplit(".", 1)[0] + ".é" + ALICE.rsplit(".", 1)[1][1:],
    "non-ASCII payload": "1.é" + MALLORY_PAYLOAD,
    "issue time too large for a float": _payload({"u": "mallory", "p": [], "t": 10**400}),
}


def raw_header_in(log: str, header: object) -> bool:
    """Whether the log holds ``header`` as it came (too short a header is not looked for)."""
    text = header.decode(errors="replace") if isinstance(header, bytes) else str(header)
    return len(text) > 8 and text in log


def fields_of(header: str) -> dict[str, object]:
    payload = header.split(".")[1]
    decoded: dict[str, object] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return decoded


def with_fields(header: str, **changes: object) -> str:
    """``header`` with its payload changed and its signature kept, as a forger would try."""
    version, _, signature = header.split(".")
    payload = json.dumps({**fields_of(header), **changes}).encode()
    return ".".join([version, base64.urlsafe_b64encode(payload).decode().rstrip("="), signature])
