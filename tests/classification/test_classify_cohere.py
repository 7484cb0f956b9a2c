"""Cohere, through the cohere SDK (on httpx). Cohere bodies carry a message and no code.

Statuses and example messages: https://docs.cohere.com/reference/errors
"""

from __future__ import annotations

from byok_tasks import classify
from byok_tasks.testing.provider_server import ProviderServer, hang_up, json_reply, stall
from tests.support.clients import STALL, STALL_TIMEOUT, cohere_chat, cohere_client, raised_by
from tests.support.fixtures import loopback_only_fixture, provider_server_fixture, server_fixture  # noqa: F401


def cohere_failure(server: ProviderServer, status: int, message: str, **headers: str):  # type: ignore[no-untyped-def]
    server.reply(json_reply(status, {"message": message}, headers=headers))
    failure = classify(raised_by(cohere_chat(cohere_client(server))))
    assert failure is not None
    assert failure.provider == "cohere"
    return failure


def test_invalid_api_token_401_is_invalid_key(server: ProviderServer) -> None:
    # Body: https://github.com/wandb/edu/issues/155
    assert cohere_failure(server, 401, "invalid api token").reason == "invalid_key"


def test_invalid_token_498_is_invalid_key(server: ProviderServer) -> None:
    # 498 is the SDK's InvalidTokenError (cohere/errors/invalid_token_error.py); message as above.
    assert cohere_failure(server, 498, "invalid api token").reason == "invalid_key"


def test_trial_key_per_minute_limit_is_rate_limit(server: ProviderServer) -> None:
    # Message: https://docs.cohere.com/reference/errors (429 examples).
    failure = cohere_failure(server, 429, "You are using a Trial key, which is limited to 40 API calls / minute.")
    assert (failure.reason, failure.retryable) == ("rate_limit", True)


def test_trial_key_monthly_limit_is_quota(server: ProviderServer) -> None:
    # Trial keys are limited to 1,000 calls a month (https://github.com/cohere-ai/cohere-developer-experience/pull/199);
    # wording modelled on the per-minute message above.
    failure = cohere_failure(server, 429, "You are using a Trial key, which is limited to 1000 API calls / month.")
    assert failure.reason == "quota"


def test_too_many_tokens_is_context_length(server: ProviderServer) -> None:
    # Message: https://docs.cohere.com/reference/errors (400 examples).
    failure = cohere_failure(
        server,
        400,
        "too many tokens: total number of tokens in the prompt cannot exceed 4081 - received 4292. Try using a shorter "
        "prompt, or enabling prompt truncating.",
    )
    assert failure.reason == "context_length"


def test_unknown_model_is_model_not_found(server: ProviderServer) -> None:
    # Body: https://github.com/cohere-ai/cohere-python/issues/590
    failure = cohere_failure(
        server,
        404,
        "model 'command-x' not found, make sure the correct model ID was used and that you have access to the model.",
    )
    assert failure.reason == "model_not_found"


def test_payment_required_402_is_quota(server: ProviderServer) -> None:
    # 402 "the account has reached its billing limit": https://docs.cohere.com/reference/errors; message paraphrased.
    assert cohere_failure(server, 402, "Please add or update your payment method to continue.").reason == "quota"


def test_invalid_request_400_is_bad_request(server: ProviderServer) -> None:
    # Message: https://docs.cohere.com/reference/errors (400 examples).
    assert cohere_failure(server, 400, "invalid request: list of documents must not be empty").reason == "bad_request"


def test_500_is_server_error(server: ProviderServer) -> None:
    # 500 Internal Server Error: https://docs.cohere.com/reference/errors; message reconstructed.
    assert cohere_failure(server, 500, "internal server error").reason == "server_error"


def test_timeout_is_timeout(server: ProviderServer) -> None:
    server.reply(stall(STALL))
    failure = classify(raised_by(cohere_chat(cohere_client(server, timeout=STALL_TIMEOUT))))
    assert failure is not None and (failure.provider, failure.reason) == ("cohere", "timeout")


def test_dropped_connection_is_connection(server: ProviderServer) -> None:
    server.reply(hang_up())
    failure = classify(raised_by(cohere_chat(cohere_client(server))))
    assert failure is not None and (failure.provider, failure.reason) == ("cohere", "connection")
