"""A real Prometheus server (Debian's `prometheus`) on loopback, with a configuration of the test's own."""

from __future__ import annotations

import json
import shutil
import signal
import time
import urllib.parse
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

from tests.support.ports import free_port
from tests.support.processes import end_group, spawn


class PrometheusServer:
    """Scrapes ``targets`` every second and evaluates ``rule_files`` every second, storing in ``directory``."""

    def __init__(self, directory: Path, targets: list[str], rule_files: list[Path]) -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            raise RuntimeError("the prometheus binary is missing: apt-get install prometheus (.ci/run does)")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(path) for path in rule_files],
            "scrape_configs": [{"job_name": "byok-worker", "static_configs": [{"targets": targets}]}],
        }
        config_path = directory / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(config))
        self.log_path = directory / "prometheus.log"
        self.proc = spawn(
            [
                binary,
                f"--config.file={config_path}",
                f"--storage.tsdb.path={directory / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            {},
            self.log_path,
        )

    def __enter__(self) -> PrometheusServer:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as response:
                    if response.status == 200:
                        return self
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise RuntimeError(f"prometheus did not start:\n{self.log_path.read_text(errors='replace')}")
            time.sleep(0.1)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        end_group(self.proc, signal.SIGTERM, 10)

    def _get(self, path: str, **params: str) -> Any:
        query = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.url}{path}?{query}", timeout=5) as response:
            body = json.load(response)
        assert body["status"] == "success", body
        return body["data"]

    def query(self, promql: str) -> dict[tuple[tuple[str, str], ...], float]:
        """An instant query's vector, by its series' labels (without ``__name__``, ``job``, ``instance``)."""
        result = self._get("/api/v1/query", query=promql)["result"]
        dropped = {"__name__", "job", "instance"}
        return {
            tuple(sorted((k, v) for k, v in item["metric"].items() if k not in dropped)): float(item["value"][1])
            for item in result
        }

    def alerts(self) -> list[dict[str, Any]]:
        alerts: list[dict[str, Any]] = self._get("/api/v1/alerts")["alerts"]
        return alerts

    def targets_up(self) -> bool:
        active = self._get("/api/v1/targets")["activeTargets"]
        return bool(active) and all(target["health"] == "up" for target in active)
