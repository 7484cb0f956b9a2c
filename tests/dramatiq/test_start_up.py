"""A Dramatiq worker says at boot, once, what byok-tasks accepts and where keys and events go."""

from __future__ import annotations

from tests.support.dramatiq_worker import DramatiqWorkerFactory, dramatiq_worker_factory_fixture  # noqa: F401


def test_worker_logs_the_settings_line_once_at_boot(dramatiq_worker_factory: DramatiqWorkerFactory) -> None:
    log = dramatiq_worker_factory("redis").log()
    lines = [line for line in log.splitlines() if "byok-tasks: headers signed (HMAC-SHA256)" in line]
    assert len(lines) == 1, log
    assert "[byok_tasks.dramatiq] [INFO]" in lines[0]
    # At boot: before the worker says it is ready.
    assert log.index(lines[0]) < log.index("Worker process is ready for action.")
