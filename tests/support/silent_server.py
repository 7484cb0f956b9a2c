"""A loopback server that accepts connections and never answers: a Sentry (or any peer) that hangs."""

from __future__ import annotations

import contextlib
import socket
import threading


class SilentServer:
    """Accepts every connection on 127.0.0.1 and holds it open, reading nothing, sending nothing."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=128)
        self.port: int = self._listener.getsockname()[1]
        self.accepted = 0
        self._held: list[socket.socket] = []
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="silent-server", daemon=True)
        self._thread.start()

    def __enter__(self) -> SilentServer:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            self._held.append(connection)  # kept, so the peer sees an open connection, never a reset
            self.accepted += 1

    def close(self) -> None:
        self._closed.set()
        self._listener.close()
        for connection in self._held:
            with contextlib.suppress(OSError):
                connection.close()
