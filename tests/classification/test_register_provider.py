"""register_provider: a team's own provider or in-house gateway, read with the same precedence as the built-in ones."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from byok_tasks import ProviderRegistrationError, byok_context, register_provider
from byok_tasks import providers as provider_registry
from byok_tasks.testing.provider_server import ProviderServer, json_reply
from tests.classification._harness import Case, run
from tests.support.fixtures import loopback_only_fixture, provider_server_fixture, server_fixture  # noqa: F401


@pytest.fixture(autouse=True)
def registry() -> Iterator[None]:
    before = provider_registry.PROVIDERS
    yield
    provider_registry.PROVIDERS = before
    provider_registry._index()
    provider_registry.name_for_host.cache_clear()


def gateway_case(status: int, body: object, expect: tuple[str, str, str], byok: tuple[str, ...] = ()) -> Case:
    return Case(
        "in-house",
        "openai_chat",
        json_reply(status, body),
        expect,
        "",
        byok=byok,
        base_url="https://llm.corp.acme.net/v1",
    )


def test_a_registered_gateway_names_its_failures_and_counts_as_byok(server: ProviderServer) -> None:
    register_provider(
        "acme-gateway",
        base_url="https://llm.corp.acme.net/v1",
        codes={"ACME_BUDGET": "quota", "ACME_KEY": "invalid_key"},
        messages={"Tenant Suspended": "permission"},
    )
    body = {"error": {"message": "tenant budget used up", "type": "rate_limit_error", "code": "ACME_BUDGET"}}
    failure = run(server, gateway_case(429, body, ("quota", "acme-gateway", "byok"), byok=("acme-gateway",)))
    assert failure is not None
    assert (failure.reason, failure.provider, failure.source, failure.retryable) == (
        "quota",
        "acme-gateway",
        "byok",
        False,
    )


def test_registered_messages_are_read_after_codes_and_before_the_status(server: ProviderServer) -> None:
    register_provider("acme-gateway", hosts=["llm.corp.acme.net"], messages={"Tenant Suspended": "permission"})
    failure = run(
        server, gateway_case(400, {"error": {"message": "Tenant suspended by admin", "code": None}}, ("", "", ""))
    )
    assert failure is not None and (failure.reason, failure.provider) == ("permission", "acme-gateway")
    coded = run(
        server, gateway_case(400, {"error": {"message": "Tenant suspended", "code": "invalid_api_key"}}, ("", "", ""))
    )
    assert coded is not None and coded.reason == "invalid_key"  # the shared vocabulary's code beats the text


def test_registered_statuses_override_the_defaults(server: ProviderServer) -> None:
    register_provider("acme-gateway", hosts=["llm.corp.acme.net"], statuses={418: "overloaded"})
    failure = run(server, gateway_case(418, {"error": {"message": "teapot"}}, ("", "", "")))
    assert failure is not None and (failure.reason, failure.retryable) == ("overloaded", True)


def test_a_registered_provider_is_known_to_byok_context(caplog: pytest.LogCaptureFixture) -> None:
    register_provider("acme-gateway", hosts=["llm.corp.acme.net"])
    with caplog.at_level(logging.WARNING, logger="byok_tasks.context"), byok_context("u1", providers=["acme-gateway"]):
        pass
    assert not caplog.records


@pytest.mark.parametrize("name", ["deepseek", "together", "fireworks", "perplexity", "cerebras", "dashscope"])
def test_tabled_providers_raise_no_unknown_provider_warning(name: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="byok_tasks.context"), byok_context("u1", providers=[name]):
        pass
    assert not caplog.records


@pytest.mark.parametrize(
    ("kwargs", "complaint"),
    [
        ({"name": "Acme"}, "lowercase"),
        ({"name": "openai", "hosts": ["llm.acme.net"]}, "built in"),
        ({"name": "acme"}, "hosts or base_url"),
        ({"name": "acme", "hosts": "llm.acme.net"}, "not a single string"),
        ({"name": "acme", "hosts": ["https://llm.acme.net/v1"]}, "not a host name"),
        ({"name": "acme", "base_url": "llm.acme.net"}, "no host"),
        ({"name": "acme", "hosts": ["llm.acme.net"], "codes": {"X": "broke"}}, "not a reason"),
        ({"name": "acme", "hosts": ["llm.acme.net"], "codes": {"": "quota"}}, "non-empty strings"),
        ({"name": "acme", "hosts": ["llm.acme.net"], "statuses": {"429": "quota"}}, "ints"),
        ({"name": "acme", "hosts": ["llm.acme.net"], "statuses": {99: "quota"}}, "not an HTTP status"),
        ({"name": "acme", "hosts": ["llm.acme.net"], "messages": [("x", "quota")]}, "mapping"),
    ],
)
def test_invalid_registrations_are_refused_with_a_clear_error(kwargs: dict[str, object], complaint: str) -> None:
    with pytest.raises(ProviderRegistrationError, match=complaint):
        register_provider(**kwargs)  # type: ignore[arg-type]


def test_registering_again_replaces_the_table() -> None:
    register_provider("acme", hosts=["one.acme.net"])
    table = register_provider("acme", hosts=["two.acme.net"])
    assert provider_registry.by_host("two.acme.net") is table
    assert provider_registry.by_host("one.acme.net") is None
    assert sum(existing.name == "acme" for existing in provider_registry.PROVIDERS) == 1


@pytest.mark.parametrize(
    ("host", "name"),
    [
        ("api.deepseek.com", "deepseek"),
        ("api.foo-ai.example.com", "foo-ai"),
        ("inference.acme-llm.io", "acme-llm"),
        ("us-east-1.llm.acme.co.uk", "acme"),
        ("integrate.api.nvidia.com", "nvidia"),
        ("api.studio.nebius.ai", "nebius"),
        ("api.example.com", None),
        ("llm.acme.com", "acme"),
        ("127.0.0.1", None),
        ("localhost", None),
        ("::1", None),
        ("api.ai", None),
    ],
)
def test_name_for_host(host: str, name: str | None) -> None:
    assert provider_registry.name_for_host(host) == name
