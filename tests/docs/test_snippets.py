"""Every Python block of the README and of docs/ runs as written, so no snippet drifts from the code.

The blocks of one section form a story, run in order in a fresh folder: a block marked
``<!-- snippet: file=tasks.py -->`` is written to that file (blocks for the same file
add to it, and ``command="..."`` then runs that command there); any other block runs as a
script there, with the story's files importable.
``worker="..."`` on a block starts that command (a real Celery, RQ or Dramatiq worker) in the folder
before the block runs, and stops it afterwards. The environment the snippets read is the
one a deployment would set: ``REDIS_URL``, ``BROKER_URL``, ``OPENAI_BASE_URL`` (the
loopback provider sandbox), ``SENTRY_DSN`` (the loopback collector), ``BYOK_TASKS_SECRET``
and ``BYOK_TASKS_ENCRYPTION_KEY``.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from byok_tasks.keys import generate_encryption_key
from byok_tasks.testing.sandbox import ProviderSandbox, sandbox_key
from byok_tasks.testing.sentry_collector import SentryCollector
from tests.support.processes import ROOT

DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# A Redis database of the snippets' own: their workers consume Celery's default queue.
SNIPPET_DB = 12
TIMEOUT = 120  # a block that starts sentry-sdk imports every installed integration: seconds on a loaded box

_FENCE = re.compile(r"^```(\w*)\s*$")
_MARKER = re.compile(r"^<!--\s*snippet:(.*?)-->\s*$")


@dataclass
class Block:
    document: Path
    line: int
    code: str
    options: dict[str, str]


@dataclass
class Story:
    name: str
    blocks: list[Block] = field(default_factory=list)


def stories() -> list[Story]:
    found: dict[str, Story] = {}
    for document in DOCUMENTS:
        lines = document.read_text().splitlines()
        heading, options, number = document.stem, {}, 0
        while number < len(lines):
            line = lines[number]
            if line.startswith("## "):
                heading = line[3:].strip()
            if marker := _MARKER.match(line):
                options = dict(_options(marker.group(1)))
            fence = _FENCE.match(line)
            if fence is None:
                number += 1
                continue
            end = next(i for i in range(number + 1, len(lines)) if lines[i].startswith("```"))
            if fence.group(1) == "python":
                name = f"{document.relative_to(ROOT)}: {options.pop('story', heading)}"
                story = found.setdefault(name, Story(name))
                story.blocks.append(Block(document, number + 1, "\n".join(lines[number + 1 : end]) + "\n", options))
            options, number = {}, end + 1
    return list(found.values())


def _options(text: str) -> list[tuple[str, str]]:
    pairs = []
    for word in shlex.split(text):
        name, _, value = word.partition("=")
        pairs.append((name, value))
    return pairs


def test_every_python_block_belongs_to_a_story_that_runs() -> None:
    # The runner itself: a README without blocks, or a parser that finds none, proves nothing.
    assert sum(len(story.blocks) for story in stories()) >= 10


@pytest.fixture(scope="module")
def environment(redis_url: str, provider_sandbox: ProviderSandbox, sentry_collector: SentryCollector) -> dict[str, str]:
    redis_for_snippets = redis_url.rsplit("/", 1)[0] + f"/{SNIPPET_DB}"
    return {
        **os.environ,
        "REDIS_URL": redis_for_snippets,
        "BROKER_URL": redis_for_snippets,
        "OPENAI_BASE_URL": f"{provider_sandbox.url}/v1",
        "ANTHROPIC_BASE_URL": provider_sandbox.url,
        "SENTRY_DSN": sentry_collector.dsn,
        # Keys of the sandbox's "answers normally" shape, for the platform and for a user.
        "OPENAI_API_KEY": sandbox_key("openai", "ok"),
        "ALICE_OPENAI_KEY": sandbox_key("openai", "ok"),
        "BYOK_TASKS_SECRET": "snippets-secret-not-a-key",
        "BYOK_TASKS_ENCRYPTION_KEY": generate_encryption_key(),
        # The story's folder, then this checkout: its byok_tasks, whatever is installed.
        "PYTHONPATH": f".{os.pathsep}{ROOT}",
    }


@pytest.mark.parametrize("story", stories(), ids=lambda story: story.name)
def test_story_runs_as_written(story: Story, environment: dict[str, str], tmp_path: Path) -> None:
    bin_dir = str(Path(sys.executable).parent)
    env = {**environment, "PATH": f"{bin_dir}{os.pathsep}{environment.get('PATH', '')}"}
    for block in story.blocks:
        where = f"{block.document.name}:{block.line}"
        if "file" in block.options:
            with (tmp_path / block.options["file"]).open("a") as file:
                file.write(block.code)
            if "command" not in block.options:
                continue
            command = shlex.split(block.options["command"])
        else:
            script = tmp_path / f"block_{block.line}.py"
            script.write_text(block.code)
            command = [sys.executable, script.name]
        worker = _start(block.options["worker"], tmp_path, env) if "worker" in block.options else None
        try:
            done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=TIMEOUT)
        finally:
            log = _stop(worker) if worker is not None else ""
        assert done.returncode == 0, f"{where} failed:\n{done.stdout}\n{done.stderr}\nworker:\n{log}"


def _start(command: str, folder: Path, env: dict[str, str]) -> tuple[subprocess.Popen[Any], Path, str]:
    log = folder / "worker.log"
    handle = log.open("ab")
    proc = subprocess.Popen(
        shlex.split(command), cwd=folder, env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
    )
    handle.close()
    ready = {"celery": " ready.", "dramatiq": "is ready for action."}.get(command.split()[0], "Listening on")
    deadline = time.monotonic() + TIMEOUT
    while ready not in log.read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            _stop((proc, log, command))
            raise AssertionError(f"{command} did not start:\n{log.read_text(errors='replace')}")
        time.sleep(0.1)
    return proc, log, command


def _stop(worker: tuple[subprocess.Popen[Any], Path, str]) -> str:
    proc, log, _ = worker
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    return log.read_text(errors="replace")
