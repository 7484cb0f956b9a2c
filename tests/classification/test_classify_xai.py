"""xAI, through the openai SDK; the request keeps api.x.ai as its host.

xAI's bodies carry no machine-readable code: a bare JSON string, or ``{"code": <gRPC
status text>, "error": <message>}``.
"""

from __future__ import annotations

from byok_tasks import classify
from byok_tasks.testing.provider_server import ProviderServer, hang_up, json_reply, stall
from tests.support.clients import STALL, STALL_TIMEOUT, chat, openai_client_for_host, raised_by
from tests.support.fixtures import loopback_only_fixture, provider_server_fixture, server_fixture  # noqa: F401

XAI_API = "https://api.x.ai/v1"


def xai_failure(server: ProviderServer, status: int, body: object):  # type: ignore[no-untyped-def]
    server.reply(json_reply(status, body))
    failure = classify(raised_by(chat(openai_client_for_host(server, XAI_API), "grok-4")))
    assert failure is not None
    assert failure.provider == "xai"
    return failure


def test_incorrect_api_key_400_is_invalid_key(server: ProviderServer) -> None:
    # Body (a bare JSON string): https://github.com/continuedev/continue/issues/10778
    failure = xai_failure(
        server, 400, "Incorrect API key provided: na***ys. You can obtain an API key from https://console.x.ai."
    )
    assert (failure.reason, failure.status) == ("invalid_key", 400)


def test_team_without_credits_403_is_quota(server: ProviderServer) -> None:
    # Body: https://github.com/griptape-ai/griptape-nodes-engine/issues/1079
    failure = xai_failure(
        server,
        403,
        {
            "code": "The caller does not have permission to execute the specified operation",
            "error": "Your newly created teams doesn't have any credits yet. You can purchase credits on "
            "https://console.x.ai/team/c853730f-fe0f-4537-b8a2-0e6e33c8342d.",
        },
    )
    assert failure.reason == "quota"


def test_monthly_spending_limit_429_is_quota(server: ProviderServer) -> None:
    # Body: https://github.com/continuedev/continue/issues/10373
    failure = xai_failure(
        server,
        429,
        "Your team 16f2151a-40f4-4a80-8ad0-cae00c27e8dd has either used all available credits or reached its monthly "
        "spending limit. To continue making API requests, please purchase more credits or raise your spending limit.",
    )
    assert (failure.reason, failure.retryable) == ("quota", False)


def test_tokens_per_minute_429_is_rate_limit(server: ProviderServer) -> None:
    # Body: https://github.com/cline/cline/issues/4826
    failure = xai_failure(
        server,
        429,
        "Too many tokens for team e9fe19cb-de96-4c57-9ffb-2f1b9c631ce2 and model grok-4-0709. "
        "Your team's rate limit is — Tokens per Minute (actual/limit): 65605/16000. "
        "You can view your team rate limits at https://console.x.ai.",
    )
    assert failure.reason == "rate_limit"


def test_unknown_model_404_is_model_not_found(server: ProviderServer) -> None:
    # Body: https://github.com/yihong0618/bilingual_book_maker/issues/464
    failure = xai_failure(
        server,
        404,
        {
            "code": "Some requested entity was not found",
            "error": "The model grok-beta does not exist or your team bdc397fa-17fc-468e-9180-d0870ca1e10a does not "
            "have access to it. Please ensure you're using the correct API key.",
        },
    )
    assert failure.reason == "model_not_found"


def test_500_is_server_error(server: ProviderServer) -> None:
    # Shape as above (https://github.com/yihong0618/bilingual_book_maker/issues/464); message reconstructed.
    failure = xai_failure(server, 500, {"code": "Internal error", "error": "Service temporarily unavailable."})
    assert failure.reason == "server_error"


def test_timeout_is_timeout(server: ProviderServer) -> None:
    server.reply(stall(STALL))
    failure = classify(raised_by(chat(openai_client_for_host(server, XAI_API, timeout=STALL_TIMEOUT))))
    assert failure is not None and (failure.provider, failure.reason) == ("xai", "timeout")


def test_dropped_connection_is_connection(server: ProviderServer) -> None:
    server.reply(hang_up())
    failure = classify(raised_by(chat(openai_client_for_host(server, XAI_API))))
    assert failure is not None and (failure.provider, failure.reason) == ("xai", "connection")
