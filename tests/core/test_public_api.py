"""The public API is what ``byok_tasks`` and each adapter export, and it changes only on purpose.

A name added here is a promise to users; a name removed breaks them. The adapter API
(``byok_tasks.propagation``, ``byok_tasks.settings``) is what a new queue adapter needs.
"""

from __future__ import annotations

import importlib

import pytest

PUBLIC = {
    "byok_tasks": [
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
        "clear_key_status",
        "classify",
        "current_context",
        "current_key",
        "key_status",
        "llm_call",
        "redact",
        "register_provider",
        "report_llm_error",
        "report_llm_error_async",
        "submit_with_context",
    ],
    "byok_tasks.celery": ["install", "llm_retry"],
    "byok_tasks.rq": ["byok_required", "install", "llm_retry"],
    "byok_tasks.dramatiq": ["ByokMiddleware", "llm_retry"],
    "byok_tasks.sentry": ["ByokIntegration", "default_fingerprint", "redact_event"],
    "byok_tasks.asgi": ["ByokAsgiMiddleware", "DEFAULT_HEADERS", "KeyHeaders", "UidResolver"],
    "byok_tasks.wsgi": ["ByokWsgiMiddleware"],
    "byok_tasks.langchain": ["ByokCallbackHandler", "ByokEmbeddings"],
    "byok_tasks.otel": ["PROVIDER_NAMES", "instrument", "provider_name", "uninstrument"],
    "byok_tasks.prometheus": [
        "MAX_FEATURES",
        "OTHER",
        "instrument",
        "registry_for_scrape",
        "start_http_server",
        "uninstrument",
    ],
    "byok_tasks.keys": [
        "ENCRYPTION_KEY_ENV",
        "ByokKeyExpired",
        "ByokKeyUnavailable",
        "Keyring",
        "Resolver",
        "SealedKeyStore",
        "configure",
        "current_key",
        "generate_encryption_key",
    ],
    "byok_tasks.propagation": [
        "HEADER",
        "Entered",
        "configure",
        "delay_until",
        "enter",
        "flush_before_exit",
        "header_to_send",
        "installed",
        "leave",
        "refusal",
        "restore",
        "seal_keys",
        "start_up_line",
        "succeeded",
        "task_failed",
        "will_be_retried",
    ],
    "byok_tasks.settings": ["EventSink", "Settings", "configure", "configure_keys", "current", "reset"],
}


@pytest.mark.parametrize("module", sorted(PUBLIC))
def test_a_module_exports_exactly_its_public_names(module: str) -> None:
    assert sorted(importlib.import_module(module).__all__) == sorted(PUBLIC[module])


@pytest.mark.parametrize("module", sorted(PUBLIC))
def test_every_exported_name_is_defined(module: str) -> None:
    imported = importlib.import_module(module)
    assert [name for name in imported.__all__ if not hasattr(imported, name)] == []
