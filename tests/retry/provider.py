"""What the Celery and RQ retry tests script the provider with (tests/support/scripted_provider.py)."""

from __future__ import annotations

from byok_tasks.testing.provider_server import Reply, hang_up, json_reply, stall
from tests.apps.llm_retry_jobs import REPLY_TIMEOUT, STALL_TIMEOUT
from tests.support.scripted_provider import openai_error

# What each reason looks like from OpenAI, with no retry-after: the waits are the policy's own backoff.
FAILURES: dict[str, Reply] = {
    "rate_limit": openai_error(429, "rate_limit_exceeded", "Rate limit reached for gpt-4o-mini on requests per min."),
    "overloaded": json_reply(503, {"error": {"message": "The engine is currently overloaded, please try again later"}}),
    "server_error": openai_error(500, "server_error", "The server had an error while processing your request."),
    "timeout": stall(STALL_TIMEOUT * 3),
    "connection": hang_up(),
    "quota": openai_error(429, "insufficient_quota", "You exceeded your current quota, please check your plan."),
    "invalid_key": openai_error(401, "invalid_api_key", "Incorrect API key provided: sk-test***-key."),
    "permission": openai_error(403, "unsupported_country_region_territory", "Country or region not supported"),
    "context_length": openai_error(
        400, "context_length_exceeded", "This model's maximum context length is 128000 tokens."
    ),
    "content_filter": openai_error(400, "content_policy_violation", "Your request was rejected by the safety system."),
}
RETRIED = ["rate_limit", "overloaded", "server_error", "timeout", "connection"]
NOT_RETRIED = ["quota", "invalid_key", "permission", "context_length", "content_filter"]


def client_timeout(reason: str) -> float:
    """The SDK's timeout for a job scripted with ``FAILURES[reason]``: short only against the stall that outlasts it."""
    return STALL_TIMEOUT if reason == "timeout" else REPLY_TIMEOUT
