"""byok-tasks: tell a user's LLM key failures from the platform's, in background workers.

The core (everything imported here) imports no framework. The adapters
``byok_tasks.celery``, ``byok_tasks.rq`` and ``byok_tasks.sentry`` import theirs, and only
the applications that use them import them.
"""

from ._exceptions import (
    ByokContextRequired,
    ByokKeyExpired,
    ByokKeyUnavailable,
    HeaderError,
    ProviderRegistrationError,
)
from .classification import classify
from .concurrency import report_llm_error_async, submit_with_context
from .context import ByokContext, byok_context, current_context
from .failure import LLMFailure, llm_call
from .health import ByokKeyRejected, KeyHealth, KeyNotice, KeyStatus, clear_key_status, key_status
from .keys import current_key
from .providers import register_provider
from .redaction import redact
from .report import report_llm_error

__all__ = [
    "ByokContext",
    "ByokContextRequired",
    "ByokKeyExpired",
    "ByokKeyRejected",
    "ByokKeyUnavailable",
    "HeaderError",
    "KeyHealth",
    "KeyNotice",
    "KeyStatus",
    "LLMFailure",
    "ProviderRegistrationError",
    "byok_context",
    "classify",
    "clear_key_status",
    "current_context",
    "current_key",
    "key_status",
    "llm_call",
    "redact",
    "register_provider",
    "report_llm_error",
    "report_llm_error_async",
    "submit_with_context",
]
