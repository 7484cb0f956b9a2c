"""redact: no provider key or credential survives into logs and error-tracker events."""

from __future__ import annotations

import pytest

from byok_tasks import redact

# Shapes from the providers' docs and the echoes users post (masked echo:
# https://github.com/IIC2440/Syllabus-2025-1/issues/13; whole Gemini key:
# https://github.com/google/generative-ai-docs/issues/356).
KEYS = {
    "openai legacy": "sk-" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8S9t0U1v2W3x4",
    "openai project": "sk-proj-" + "Ab3_dE-fGhIjKlMnOpQrStUvWxYz0123456789abcdefABCDEF",
    "openai service account": "sk-svcacct-" + "Zyxw_VUTS-rqpo0123456789abcdefghijKLMNOP",
    "openai admin": "sk-admin-" + "0123456789abcdefABCDEF0123456789abcdef",
    "openai masked echo": "sk-proj-" + "*" * 40 + "SJh4",
    "anthropic": "sk-ant-api03-" + "AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_AbCdEfGhIjKlMnOpQrStUvWxYz01234567AA",
    "openrouter": "sk-or-v1-" + "0123456789abcdef" * 4,
    "google api key": "AIzaSyAbm-_oW12aAAxNc8FEEh-84QT7o-9r1Ak",
    "google oauth token": "ya29.a0AfH6SMBx3dQ_example-token.value0123456789",
    "groq": "gsk_" + "aB3dE5gH7jK9mN1pQ3sT5vW7yZ9bC1eF3hJ5kL7nP9rS1uV3xY5",
    "xai": "xai-" + "AbCdEfGhIjKlMnOpQrStUvWxYz0123456789AbCdEfGhIjKlMnOpQrStUvWxYz0123456789AbCd",
    "hugging face": "hf_" + "AbCdEfGhIjKlMnOpQrStUvWxYz01234567",
    "aws access key id": "AKIAIOSFODNN7EXAMPLE",
    "aws temporary key id": "ASIAY34FZKBOKMUTVV7A",
}


@pytest.mark.parametrize("key", KEYS.values(), ids=KEYS.keys())
def test_every_key_shape_is_redacted_in_prose(key: str) -> None:
    text = f"Incorrect API key provided: {key}. You can find your API key in the console."
    assert key not in redact(text)
    assert "[REDACTED]" in redact(text)


@pytest.mark.parametrize("key", KEYS.values(), ids=KEYS.keys())
def test_every_key_shape_is_redacted_inside_json(key: str) -> None:
    text = '{"error": {"message": "bad key", "key": "' + key + '"}}'
    assert key not in redact(text)


def test_key_query_parameter_is_redacted_and_the_url_kept() -> None:
    text = "POST https://generativelanguage.googleapis.com/v1beta/models/gemini-pro:generateContent?key=abc123secret&alt=sse"
    assert redact(text) == (
        "POST https://generativelanguage.googleapis.com/v1beta/models/gemini-pro:generateContent?key=[REDACTED]&alt=sse"
    )


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("Authorization: Bearer opaque-token-123456", "Authorization: Bearer [REDACTED]"),
        ("authorization: Basic dXNlcjpwYXNz", "authorization: Basic [REDACTED]"),
        ("x-api-key: 7f9c2ba4e88f827d", "x-api-key: [REDACTED]"),
        ("api-key: 0123456789abcdef0123456789abcdef", "api-key: [REDACTED]"),
        ("X-Goog-Api-Key: not-a-google-shape", "X-Goog-Api-Key: [REDACTED]"),
        ("'headers': {'x-api-key': 'short'}", "'headers': {'x-api-key': '[REDACTED]'}"),
    ],
)
def test_credential_headers_are_redacted_whatever_the_value_looks_like(header: str, expected: str) -> None:
    assert redact(header) == expected


def test_bearer_token_anywhere_is_redacted() -> None:
    assert redact("sent with bearer abcdefgh.ijklmnop") == "sent with bearer [REDACTED]"


@pytest.mark.parametrize(
    "text",
    [
        "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        '{"SecretAccessKey": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}',
    ],
)
def test_aws_secret_next_to_its_name_is_redacted(text: str) -> None:
    assert "wJalrXUtnFEMI" not in redact(text)


def test_environment_style_names_are_redacted() -> None:
    assert (
        redact("OPENAI_API_KEY=abc ANTHROPIC_API_KEY=def") == "OPENAI_API_KEY=[REDACTED] ANTHROPIC_API_KEY=[REDACTED]"
    )


@pytest.mark.parametrize(
    "text",
    [
        "Error: 401 invalid x-api-key",
        "task-management-system-design is not a key",
        "Your credit balance is too low to access the Anthropic API.",
        "The model `gpt-4o` does not exist or you do not have access to it.",
        "Please pass a valid API key.",
    ],
)
def test_ordinary_provider_messages_are_left_alone(text: str) -> None:
    assert redact(text) == text


def test_redacting_twice_changes_nothing_more() -> None:
    once = redact(f"key {KEYS['groq']} and Authorization: Bearer abcdefghijk")
    assert redact(once) == once


def test_a_key_this_process_handled_is_redacted_whatever_its_shape() -> None:
    from byok_tasks.redaction import remember_key

    key = "Qm7fXk2LpR9sT4vW8yZ1aB3cD5eF6gH0"  # Mistral keys are 32 letters and digits, nothing to recognise
    assert redact(f"Unauthorized: API key {key} is not valid") == f"Unauthorized: API key {key} is not valid"
    remember_key(key)
    assert redact(f"Unauthorized: API key {key} is not valid") == "Unauthorized: API key [REDACTED] is not valid"
    assert redact(f"the key was {key}.") == "the key was [REDACTED]."


def test_keys_given_to_a_context_are_redacted_from_failure_logs(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from byok_tasks import byok_context, report_llm_error

    key = "Zc8Vb2Nm4Qw6Er8Ty0Ui2Op4As6Df8Gh"
    with caplog.at_level(logging.WARNING, logger="byok_tasks.failures"), byok_context("alice", keys={"mistral": key}):
        report_llm_error(ConnectionError(f"connection reset while sending {key}"), provider="mistral")
    assert caplog.records, "the failure was not logged"
    assert all(key not in record.getMessage() and key not in str(record.error) for record in caplog.records)
