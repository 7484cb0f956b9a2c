"""Real web servers for the web tests, each in a process of its own on a socket the test bound.

The child is ``python -m tests.apps.web_server asgi|wsgi module:attribute FD``: uvicorn
or werkzeug's threaded server, serving the app on the listening socket it inherits.
Binding in the test first means no free-port race, and the test knows the URL at once.
A process of its own keeps the app's install() (sealed keys, Sentry) out of the test process.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class WebServer:
    proc: subprocess.Popen[bytes]
    url: str
    log_path: Path

    @classmethod
    def start(cls, kind: str, target: str, log_path: Path, env: dict[str, str]) -> WebServer:
        with socket.socket() as listening:
            listening.bind(("127.0.0.1", 0))
            listening.listen(128)
            fd = listening.fileno()
            with log_path.open("wb") as log:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "tests.apps.web_server", kind, target, str(fd)],
                    cwd=ROOT,
                    env={**os.environ, "PYTHONPATH": str(ROOT), **env},
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    pass_fds=[fd],
                    start_new_session=True,
                )
            server = cls(proc, f"http://127.0.0.1:{listening.getsockname()[1]}", log_path)
        server._wait_until_it_answers()
        return server

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def _wait_until_it_answers(self) -> None:
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the web server did not start:\n{self.log()}")
            try:
                httpx.get(self.url + "/look", timeout=5)
                return
            except httpx.TransportError:
                time.sleep(0.1)


def main() -> None:
    kind, target, fd = sys.argv[1:]
    listening = socket.socket(fileno=int(fd))
    if kind == "asgi":
        import uvicorn

        uvicorn.Server(uvicorn.Config(target, log_level="info")).run(sockets=[listening])
        return
    from werkzeug.serving import make_server

    module, attribute = target.split(":")
    app = getattr(importlib.import_module(module), attribute)
    host, port = listening.getsockname()[:2]
    make_server(host, port, app, threaded=True, fd=listening.fileno()).serve_forever()


if __name__ == "__main__":
    main()
