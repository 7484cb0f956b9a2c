"""The processes run.py drives: command children (see _child.py) and real `celery worker`s."""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


class ChildFailed(RuntimeError):
    pass


def _environment(env: dict[str, str]) -> dict[str, str]:
    full = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1", **env}
    # A secret in the caller's environment would sign headers in every variant.
    full.pop("BYOK_TASKS_SECRET", None)
    return full


class Child:
    """A long-lived ``python -m <module>`` answering commands; its stderr goes to ``log_path``."""

    def __init__(self, module: str, env: dict[str, str], log_path: Path, *, start_timeout: float = 60) -> None:
        self.module = module
        self.log_path = log_path
        with log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", module],
                cwd=ROOT,
                env=_environment(env),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
            )
        self._read(start_timeout)  # "ready"

    def call(self, command: str, *, timeout: float = 300, **args: Any) -> Any:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"command": command, "args": args}) + "\n")
        self.proc.stdin.flush()
        return self._read(timeout)

    def _read(self, timeout: float) -> Any:
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline() if ready else ""
        if not line:
            self.close()
            raise ChildFailed(f"{self.module} did not answer within {timeout:g} s:\n{tail(self.log_path)}")
        answer = json.loads(line)
        if "error" in answer:
            raise ChildFailed(f"{self.module}: {answer['error']}\n{answer.get('traceback', '')}")
        return answer["ok"]

    def close(self) -> None:
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            with contextlib.suppress(BrokenPipeError):
                self.proc.stdin.close()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


class Worker:
    """A real ``celery worker`` for ``app_module`` on ``queue``, in a process group of its own."""

    def __init__(
        self, app_module: str, pool: str, concurrency: int, queue: str, env: dict[str, str], log_path: Path
    ) -> None:
        self.queue = queue
        self.log_path = log_path
        with log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable, "-m", "celery", "-A", app_module, "worker",
                    "-P", pool, "-c", str(concurrency), "-Q", queue, "-n", f"{queue}@%h",
                    # Per-task INFO lines would add the same cost to every variant and shrink the ratios.
                    "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "WARNING",
                ],
                cwd=ROOT, env=_environment(env), stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip

    def alive(self) -> bool:
        return self.proc.poll() is None

    def cpu_seconds(self) -> float:
        """CPU time of the worker and its pool processes so far, every thread included."""
        total_ns = 0
        for pid in _process_group(self.proc.pid):
            for schedstat in Path(f"/proc/{pid}/task").glob("*/schedstat"):
                with contextlib.suppress(OSError, ValueError, IndexError):
                    total_ns += int(schedstat.read_text().split()[0])
        return total_ns / 1e9

    def stop(self) -> None:
        if self.alive():
            os.killpg(self.proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(10)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)


def _process_group(pgid: int) -> list[int]:
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            # The command name (in parentheses) may hold spaces; the fields after it do not.
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid:
                members.append(int(stat.parent.name))
    return members


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def pop(redis_client: Any, key: str, worker: Worker, timeout: float) -> bytes:
    """The next item the worker pushes to ``key``; an error if the worker dies or stalls first."""
    deadline = time.monotonic() + timeout
    while True:
        if not worker.alive():
            raise ChildFailed(f"the worker died:\n{tail(worker.log_path)}")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ChildFailed(f"the worker stalled: nothing on {key} within {timeout:g} s:\n{tail(worker.log_path)}")
        # Short waits: the Redis client gives up on a socket silent for 5 s.
        popped = redis_client.blpop([key], timeout=min(2.0, max(remaining, 0.1)))
        if popped is not None:
            return bytes(popped[1])
