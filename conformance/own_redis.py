"""Run a command beside a Redis server of its own on 127.0.0.1:6379, inside fresh network and PID namespaces.

Started by ``run.py`` under ``unshare --net --pid``: the network namespace has only a
loopback device, down until brought up here, so the Redis the rest of the machine uses is
out of reach; in the PID namespace this is the first process, and what the command leaves
running ends with it.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time


def main() -> int:
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    with tempfile.TemporaryDirectory() as folder:
        redis = subprocess.Popen(
            ["redis-server", "--port", "6379", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", folder],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            # Generous: every suite's runs start at once, on a machine of two cores.
            deadline = time.monotonic() + 60
            while True:
                try:
                    socket.create_connection(("127.0.0.1", 6379), timeout=1).close()
                    break
                except OSError:
                    if redis.poll() is not None:
                        raise SystemExit(f"own_redis: redis-server exited with status {redis.returncode}") from None
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
            return subprocess.run(sys.argv[1:], check=False).returncode
        finally:
            redis.terminate()
            redis.wait(10)


if __name__ == "__main__":
    sys.exit(main())
