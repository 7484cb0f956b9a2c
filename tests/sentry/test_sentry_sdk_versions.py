"""``byok_tasks.sentry`` with a sentry-sdk it does not work with: refused at import, saying which versions do.

sentry-sdk 3.0.0 is the real release, installed beside the venv by ``make`` (the Makefile's
``SENTRY3``) and put first on the path of a fresh interpreter; the venv keeps its 2.x.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SENTRY3 = Path(sys.prefix) / "sentry-sdk-3"


def import_with_sentry_sdk_3(statement: str) -> subprocess.CompletedProcess[str]:
    assert (SENTRY3 / "sentry_sdk").is_dir(), f"sentry-sdk 3.0.0 is installed in {SENTRY3} by make: run make test"
    script = f"import sentry_sdk; print(sentry_sdk.VERSION, flush=True); {statement}"
    env = {**os.environ, "PYTHONPATH": str(SENTRY3)}
    return subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)


def test_importing_the_integration_with_sentry_sdk_3_says_which_versions_work() -> None:
    done = import_with_sentry_sdk_3("from byok_tasks.sentry import ByokIntegration")
    assert done.stdout.strip() == "3.0.0"
    assert done.returncode == 1
    last_line = done.stderr.strip().splitlines()[-1]
    assert last_line == (
        "ImportError: byok_tasks.sentry works with sentry-sdk 2.20 to 2.x, and 3.0.0 is installed: "
        'pip install "sentry-sdk>=2.20,<3"'
    )


def test_the_rest_of_byok_tasks_imports_with_sentry_sdk_3() -> None:
    # Only the integration needs sentry-sdk 2: a worker that does not use it starts.
    done = import_with_sentry_sdk_3("import byok_tasks, byok_tasks.celery, byok_tasks.rq; print('imported')")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["3.0.0", "imported"]
