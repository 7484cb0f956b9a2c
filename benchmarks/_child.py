"""The child side of the benchmark harness: a process that answers commands from run.py.

Each variant runs in a process of its own, so that one variant's signal handlers and SDK
hooks never touch another's measurements. The process reads one JSON command a line on
stdin and answers one JSON line on its own copy of stdout; anything a library prints
goes to stderr, which run.py keeps in a log file.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from collections.abc import Callable, Mapping
from typing import Any

Command = Callable[..., object]


def serve(commands: Mapping[str, Command]) -> None:
    """Answer commands until stdin closes: ``{"command": name, "args": {...}}`` -> ``{"ok": result}``."""
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # stray prints from libraries must not corrupt the protocol
    sys.stdout = sys.stderr
    _answer(protocol, {"ok": "ready"})
    for line in sys.stdin:
        request = json.loads(line)
        try:
            answer: dict[str, Any] = {"ok": commands[request["command"]](**request.get("args", {}))}
        except Exception as exc:
            answer = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
        _answer(protocol, answer)


def _answer(protocol: Any, answer: dict[str, Any]) -> None:
    protocol.write(json.dumps(answer) + "\n")
    protocol.flush()
