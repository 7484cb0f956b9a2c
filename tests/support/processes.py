"""Worker subprocesses for the tests: their environment, their start, their log and their end."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

ROOT = Path(__file__).resolve().parents[2]


def environment(extra: dict[str, str], *, secret: str | None, require_signature: bool) -> dict[str, str]:
    """This process's environment for a worker: its secret (or none), strictness, and ``extra``."""
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "BYOK_TEST_REQUIRE_SIGNATURE": "1" if require_signature else "",
        **extra,
    }
    env.pop("BYOK_TASKS_SECRET", None)
    if secret is not None:
        env["BYOK_TASKS_SECRET"] = secret
    return env


def spawn(command: Sequence[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """``command`` in a process group of its own (so that it can be stopped whole), logging to ``log_path``."""
    with log_path.open("wb") as log:
        return subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )


class Logged(Protocol):
    def log(self) -> str: ...


def failure_records(worker: Logged, feature: str, expect: int = 0) -> list[str]:
    """The structured ``llm failure`` log lines the worker wrote for ``feature``, once there are ``expect``
    of them (or after a minute): a Dramatiq worker process's lines come through its main process, and can
    land after the message's own records do."""

    def records() -> list[str]:
        return [line for line in worker.log().splitlines() if "llm failure " in line and f"feature={feature!r}" in line]

    deadline = time.monotonic() + 60
    while len(found := records()) < expect and time.monotonic() < deadline:
        time.sleep(0.05)
    return found


def wait_until_ready(proc: subprocess.Popen[bytes], log_path: Path, marker: str, what: str) -> None:
    """Until the log shows ``marker``; RuntimeError (with the log) if the process dies or a minute passes."""
    deadline = time.monotonic() + 60
    while marker not in log_path.read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start:\n{log_path.read_text(errors='replace')}")
        time.sleep(0.1)


def end_group(proc: subprocess.Popen[bytes], first: signal.Signals, grace: float) -> None:
    """Signal the process group with ``first``, give it ``grace`` seconds, then kill what is left."""
    if proc.poll() is None:
        os.killpg(proc.pid, first)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(grace)
    # Whatever is left of the group (pool children, a work horse, the scheduler) goes too.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)
