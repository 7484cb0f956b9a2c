"""Fixtures for tests that talk to the loopback provider. Import the ones a module uses.

Each is registered under the name tests ask for (``server``, ``provider_server``,
``loopback_only``); the functions' own names differ so that importing them does not
shadow the test functions' parameters.

``loopback_only`` is autouse wherever it is imported: every test of a module that
imports it fails instead of resolving a public host, so a misrouted SDK can never
send a request off this machine.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest

from byok_tasks.testing.provider_server import ProviderServer

_LOOPBACK = ("127.", "localhost", "::1")


@pytest.fixture(autouse=True, name="loopback_only")
def loopback_only_fixture(monkeypatch: pytest.MonkeyPatch) -> None:
    real_getaddrinfo = socket.getaddrinfo

    def loopback_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        if not name.startswith(_LOOPBACK):
            raise OSError(f"a test tried to resolve {name!r}: tests stay on loopback")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", loopback_getaddrinfo)


@pytest.fixture(scope="module", name="provider_server")
def provider_server_fixture() -> Iterator[ProviderServer]:
    with ProviderServer() as server:
        yield server


@pytest.fixture(name="server")
def server_fixture(provider_server: ProviderServer) -> ProviderServer:
    """The module's provider server, with nothing scripted and nothing recorded."""
    provider_server.reset()
    return provider_server
