"""A Sentry-protocol collector on loopback: point a real sentry-sdk at ``collector.dsn``.

It accepts what sentry-sdk sends over HTTP (envelopes, gzip- or brotli-compressed),
keeps the events, and can play an unhealthy Sentry (answering 500 or 429, or slowly)
so that tests and the demo see exactly what Sentry would receive, with no account.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import signal
import threading
import time
import zlib
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal

__all__ = ["Behaviour", "SentryCollector", "parse_envelope"]

Behaviour = Literal["ok", "error", "rate_limited", "slow"]


def parse_envelope(data: bytes) -> tuple[dict[str, Any], list[tuple[dict[str, Any], bytes]]]:
    """An envelope's header and its (item header, payload) pairs."""
    header_line, _, rest = data.partition(b"\n")
    header = json.loads(header_line) if header_line.strip() else {}
    items = []
    while rest.strip():
        item_line, _, rest = rest.partition(b"\n")
        item_header = json.loads(item_line)
        length = item_header.get("length")
        if length is None:
            payload, _, rest = rest.partition(b"\n")
        else:
            payload, rest = rest[:length], rest[length:]
            rest = rest.removeprefix(b"\n")
        items.append((item_header, payload))
    return header, items


def _decompress(body: bytes, encoding: str) -> bytes:
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "deflate":
        return zlib.decompress(body)
    if encoding == "br":
        import brotli  # type: ignore[import-not-found]  # sentry-sdk only uses br when brotli is installed

        return bytes(brotli.decompress(body))
    return body


class SentryCollector:
    """Collects events on a background thread; use as a context manager or call close()."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, slow_seconds: float = 10.0) -> None:
        self.behaviour: Behaviour = "ok"
        self.slow_seconds = slow_seconds
        self.events: list[dict[str, Any]] = []
        self.raw: list[bytes] = []  # every request body as received, decompressed
        self._changed = threading.Condition()
        self._server = ThreadingHTTPServer((host, port), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="sentry-collector", daemon=True)
        self._thread.start()

    @property
    def dsn(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://byok-public-key@{host!s}:{port}/1"

    def __enter__(self) -> SentryCollector:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def clear(self) -> None:
        with self._changed:
            self.events.clear()
            self.raw.clear()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """The events once at least ``count`` have arrived; what there is after ``timeout``."""
        return self.wait_until(lambda events: len(events) >= count, timeout)

    def wait_until(self, done: Callable[[list[dict[str, Any]]], bool], timeout: float = 10.0) -> list[dict[str, Any]]:
        """The events once ``done(events)`` holds; what there is after ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not done(self.events) and (remaining := deadline - time.monotonic()) > 0:
                self._changed.wait(remaining)
            return list(self.events)

    def quiet_for(self, seconds: float) -> list[dict[str, Any]]:
        """The events once none has arrived for ``seconds``: to assert that nothing more comes."""
        with self._changed:
            while self._changed.wait(seconds):
                pass
            return list(self.events)

    def save(self, path: str | Path) -> None:
        """Write the events as a JSON array, the input of ``byok-tasks triage``."""
        Path(path).write_text(json.dumps(self.events, indent=1, default=str))

    def _receive(self, body: bytes) -> None:
        _, items = parse_envelope(body)
        events = [json.loads(payload) for item, payload in items if item.get("type") == "event"]
        with self._changed:
            self.raw.append(body)
            self.events.extend(events)
            self._changed.notify_all()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        collector = self

        class Handler(BaseHTTPRequestHandler):
            disable_nagle_algorithm = True  # see ProviderServer: no 40 ms wait per answer

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                behaviour = collector.behaviour
                if behaviour == "slow":
                    time.sleep(collector.slow_seconds)
                if behaviour == "error":
                    self._answer(500)
                    return
                if behaviour == "rate_limited":
                    self._answer(429, {"Retry-After": "60", "X-Sentry-Rate-Limits": "60::organization"})
                    return
                try:
                    collector._receive(_decompress(body, self.headers.get("Content-Encoding", "")))
                except (ValueError, OSError):
                    self._answer(400)
                    return
                self._answer(200)

            def _answer(self, status: int, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, format: str, *args: Any) -> None:
                pass  # the collector is quiet; tests look at what it received

        return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--out", type=Path, help="save the events here on Ctrl-C or SIGTERM")
    args = parser.parse_args()
    collector = SentryCollector(port=args.port)
    print(collector.dsn, flush=True)
    # SIGTERM too: a collector started in the background of a script never sees Ctrl-C.
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()
        if args.out:
            collector.save(args.out)
    finally:
        collector.close()


if __name__ == "__main__":
    main()
