"""byok-tasks: tell a user's LLM key failures from the platform's, in background workers.

The core (this package's top level) imports no framework. Adapters live in
``byok_tasks.celery``, and are imported only by the applications that use them.
"""

from .context import ByokContext, ByokContextRequired, byok_context, current_context
from .header import HeaderError

__all__ = [
    "ByokContext",
    "ByokContextRequired",
    "HeaderError",
    "byok_context",
    "current_context",
]
