"""Adapters import their framework through :func:`needs_extra`, so a missing one names the extra to install.

Without it, ``import byok_tasks.rq`` on a machine without RQ fails with ``No module named
'rq'`` from inside byok-tasks, which reads like a bug of ours rather than a missing install.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

__all__ = ["needs_extra"]


@contextlib.contextmanager
def needs_extra(module: str, framework: str, extra: str) -> Iterator[None]:
    """Imports inside this block that fail say ``<module> needs <framework>: pip install "byok-tasks[<extra>]"``.

    The error stays a :class:`ModuleNotFoundError` (an :class:`ImportError`) with the missing
    module's ``name``, so code that catches either, or tests for ``exc.name``, keeps working.
    """
    try:
        yield
    except ModuleNotFoundError as exc:
        # The module that is missing can be a dependency of the framework (RQ needs redis): say which.
        raise ModuleNotFoundError(
            f'{module} needs {framework}: pip install "byok-tasks[{extra}]" (No module named {exc.name!r})',
            name=exc.name,
        ) from exc
