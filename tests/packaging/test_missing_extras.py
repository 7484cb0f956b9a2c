"""An adapter imported without its framework says which extra to install.

The test environment has every extra installed, and uninstalling one from it would break
the tests running next to these. Each case runs in a fresh interpreter whose import system
refuses the framework instead: a finder first on ``sys.meta_path`` raises the
ModuleNotFoundError (with ``name``) that Python raises for a package that is not there.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support.processes import ROOT

EVERY_FRAMEWORK = [
    *("celery", "kombu", "rq", "dramatiq", "redis", "sentry_sdk", "langchain_core", "cryptography"),
    *("starlette", "flask", "openai", "anthropic"),
]

SCRIPT = """
import sys

BLOCKED = {blocked!r}


class Missing:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None


sys.meta_path.insert(0, Missing())
{imports}
"""


def run_without(blocked: list[str], imports: str) -> subprocess.CompletedProcess[str]:
    script = SCRIPT.format(blocked=blocked, imports=imports)
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=ROOT)


def last_line(done: subprocess.CompletedProcess[str]) -> str:
    return done.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize(
    ("adapter", "framework", "extra", "blocked"),
    [
        ("byok_tasks.celery", "Celery", "celery", "celery"),
        ("byok_tasks.rq", "RQ", "rq", "rq"),
        ("byok_tasks.dramatiq", "Dramatiq", "dramatiq", "dramatiq"),
        ("byok_tasks.sentry", "sentry-sdk", "sentry", "sentry_sdk"),
        ("byok_tasks.langchain", "LangChain", "langchain", "langchain_core"),
    ],
)
def test_an_adapter_without_its_framework_names_the_extra_to_install(
    adapter: str, framework: str, extra: str, blocked: str
) -> None:
    done = run_without([blocked], f"import {adapter}")
    assert done.returncode != 0
    assert last_line(done) == (
        f'ModuleNotFoundError: {adapter} needs {framework}: pip install "byok-tasks[{extra}]" '
        f"(No module named {blocked!r})"
    )


def test_a_missing_dependency_of_the_framework_is_named_with_the_extra() -> None:
    # RQ itself imports redis: a broken install of the extra says which module is missing.
    done = run_without(["redis"], "import byok_tasks.rq")
    assert last_line(done) == (
        "ModuleNotFoundError: byok_tasks.rq needs RQ: pip install \"byok-tasks[rq]\" (No module named 'redis')"
    )


def test_the_error_keeps_the_missing_modules_name_for_code_that_reads_it() -> None:
    done = run_without(
        ["rq"],
        "try:\n    import byok_tasks.rq\nexcept ImportError as exc:\n    print(exc.name)",
    )
    assert done.stdout.strip() == "rq"


def test_the_core_and_the_web_middleware_import_without_any_framework() -> None:
    done = run_without(EVERY_FRAMEWORK, "import byok_tasks, byok_tasks.asgi, byok_tasks.wsgi, byok_tasks.retry")
    assert done.returncode == 0, done.stderr
