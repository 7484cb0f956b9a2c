"""Real `celery worker` processes for the tests, each on a queue of its own."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

from celery import Celery

from tests.apps.celery_app import create_app
from tests.support.processes import end_group, environment, spawn, wait_until_ready

# The secret every test worker and the test process share, unless a test says otherwise.
SECRET = "test-secret-not-a-key"
CONCURRENCY = {"prefork": 2, "threads": 4, "solo": 1, "gevent": 20}


@dataclass
class Worker:
    proc: subprocess.Popen[bytes]
    log_path: Path
    queue: str
    pool: str
    app: Celery  # the publishing side, configured like the worker

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop_soon(self) -> None:
        """A cold shutdown: the tests are done with the worker, nothing needs to finish."""
        if self.alive():
            os.killpg(self.proc.pid, signal.SIGQUIT)

    def stop(self) -> None:
        end_group(self.proc, signal.SIGQUIT, 5)
        self.app.close()


def start_worker(
    broker_url: str,
    backend_url: str,
    pool: str,
    log_dir: Path,
    *,
    app_module: str = "tests.apps.worker_main",
    secret: str | None = SECRET,
    require_signature: bool = False,
    env: dict[str, str] | None = None,
    queue_from_config: bool = False,
    concurrency: int | None = None,
) -> Worker:
    """A worker for ``app_module``'s app on a fresh queue, with ``env`` added to its environment.

    With ``queue_from_config`` the queue is not named on the command line: the worker
    consumes the queues its app's configuration gives (``BYOK_TEST_QUEUE`` is set for that).

    ``Worker.app`` publishes to it; tasks that app does not define go by name (``send_task``).
    """
    queue = f"byok-test-{pool}-{uuid.uuid4().hex[:8]}"
    log_path = log_dir / f"{queue}.log"
    full_env = environment(
        {"BROKER_URL": broker_url, "RESULT_BACKEND": backend_url, "BYOK_TEST_QUEUE": queue, **(env or {})},
        secret=secret,
        require_signature=require_signature,
    )
    proc = spawn(
        [
            sys.executable, "-m", "celery", "-A", app_module, "worker",
            "-P", pool, "-c", str(concurrency or CONCURRENCY[pool]), *([] if queue_from_config else ["-Q", queue]),
            "-n", f"{queue}@%h",
            "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "INFO",
        ],
        full_env,
        log_path,
    )  # fmt: skip
    worker = Worker(proc, log_path, queue, pool, create_app(broker_url, backend_url, queue, secret=SECRET))
    try:
        wait_until_ready(proc, log_path, " ready.", f"celery worker ({pool})")
    except RuntimeError:
        worker.stop()
        raise
    return worker
