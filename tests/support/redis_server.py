"""A redis-server of the test's own, on a free port, that the test may kill, freeze and restart.

Never the shared Redis on 6379: other tests run against that one. Whatever happens in
the test, ``close()`` (or leaving the ``with`` block) thaws and kills only the server
this object started, by its PID.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from tests.support.ports import free_port
from tests.support.services import redis_answers


class RedisServer:
    """``redis-server`` on 127.0.0.1:``port``, its data in ``directory`` (kept across restarts)."""

    def __init__(self, directory: Path, *, args: Sequence[str] = ()) -> None:
        if shutil.which("redis-server") is None:
            pytest.skip("redis-server is not installed")
        self.directory = directory
        self.port = free_port()
        self.args = list(args)
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def __enter__(self) -> RedisServer:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def start(self) -> None:
        command = [
            "redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.directory),
            "--save", "", "--protected-mode", "no", *self.args,
        ]  # fmt: skip
        log = (self.directory / "redis.log").open("ab")
        self.proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.monotonic() + 10
        while not self._answers():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start:\n{(self.directory / 'redis.log').read_text()}")
            time.sleep(0.02)

    def _answers(self) -> bool:
        # A server that requires a password answers PING with -NOAUTH: listening is enough.
        if redis_answers(self.url):
            return True
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"-NOAUTH")
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL: the server is gone at once, as in a crash; connections are refused from now on."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def freeze(self) -> None:
        """SIGSTOP: the port still accepts connections (the kernel completes them) but nothing answers."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)

    def restart(self) -> None:
        """Kill, then start again on the same port and directory (an append-only file is replayed)."""
        self.kill()
        self.start()

    def close(self) -> None:
        # Thawed, then killed: whatever state a test left it in, nothing of it outlives the test.
        with contextlib.suppress(ProcessLookupError):
            self.thaw()
            self.kill()


@pytest.fixture(name="own_redis")
def own_redis_fixture(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server for this test alone: kill it, freeze it; it is gone after the test."""
    with RedisServer(tmp_path) as server:
        yield server
