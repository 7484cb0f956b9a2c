"""The exceptions byok-tasks raises, in one place::

    RuntimeError
    ├── ByokContextRequired        a byok_required task or job about to run without a context
    └── ByokKeyUnavailable         a provider is BYOK, but the user's key cannot be had
        ├── ByokKeyExpired         the sealed keys a task refers to are gone
        └── ByokKeyRejected        the key is known dead across the fleet (byok_tasks.health)
    ValueError
    ├── HeaderError                a BYOK header that cannot be trusted
    └── ProviderRegistrationError  register_provider() was given something it cannot use

None of them ever quotes a key or a header. Each is importable from ``byok_tasks``.
"""

from __future__ import annotations

__all__ = [
    "ByokContextRequired",
    "ByokKeyExpired",
    "ByokKeyUnavailable",
    "HeaderError",
    "ProviderRegistrationError",
]


class ByokContextRequired(RuntimeError):
    """A task that must run with a user's keys was about to run without a valid BYOK context.

    Raised instead of letting the task fall back to the platform's key. It is not retried:
    a missing context does not appear by waiting.
    """


class ByokKeyUnavailable(RuntimeError):
    """A provider is BYOK for this context, but the user's key cannot be had. Never a silent fallback.

    ``uid`` and ``provider`` say whose key it was (``provider`` is None when the keys of
    several providers were being sealed), so that the failure is filed as the user's.
    """

    def __init__(self, message: str, *, uid: str | None = None, provider: str | None = None) -> None:
        super().__init__(message)
        self.uid = uid
        self.provider = provider


class ByokKeyExpired(ByokKeyUnavailable):
    """The sealed keys a task refers to are gone: their TTL passed, or they were never stored."""


class HeaderError(ValueError):
    """A BYOK header that cannot be trusted. The message says why and never quotes the header."""


class ProviderRegistrationError(ValueError):
    """:func:`register_provider` was given something it cannot use; the message says what."""
