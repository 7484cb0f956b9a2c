"""An embedded Redis-protocol server (fakeredis, with Lua) for running without Redis installed.

It is good enough for Celery's and RQ's Redis transports and result backends on one
machine; it keeps everything in memory and lives as long as the process that serves it.
"""

from __future__ import annotations

import argparse
import socket
import threading
from dataclasses import dataclass

from fakeredis import TcpFakeServer

__all__ = ["DEFAULT_PORT", "EmbeddedRedis", "ensure", "serve"]

# Far from 6379 so that it never shadows a real Redis, fixed so that a worker and the
# processes that publish to it find each other without configuration.
DEFAULT_PORT = 6399


@dataclass
class EmbeddedRedis:
    server: TcpFakeServer
    thread: threading.Thread

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"redis://{host!s}:{port}/0"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def serve(host: str = "127.0.0.1", port: int = 0) -> EmbeddedRedis:
    """Start a server on a background thread; port 0 picks a free one."""
    server = TcpFakeServer((host, port))
    thread = threading.Thread(target=server.serve_forever, name="embedded-redis", daemon=True)
    thread.start()
    return EmbeddedRedis(server, thread)


def _answers_ping(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def ensure(host: str = "127.0.0.1", port: int = DEFAULT_PORT) -> str:
    """The URL of the embedded server on the default port, starting it here if none answers yet."""
    if not _answers_ping(host, port):
        try:
            serve(host, port)
        except OSError:
            # Another process won the race to bind; it serves the same URL.
            if not _answers_ping(host, port):
                raise
    return f"redis://{host}:{port}/0"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    args = parser.parse_args()
    embedded = serve(args.host, args.port)
    print(embedded.url, flush=True)
    embedded.thread.join()


if __name__ == "__main__":
    main()
