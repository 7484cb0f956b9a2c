"""A small web-like publisher: requests from users, some with their own keys, enqueue work.

It does what a web handler behind byok-tasks' middleware does: set the BYOK context from
the request (the user, and the keys their request carried) and enqueue tasks as usual.
The keys travel to the worker sealed in Redis; the messages carry only a reference.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from celery import Celery
from celery.result import AsyncResult

import byok_tasks.celery
from byok_tasks import byok_context
from byok_tasks.keys import SealedKeyStore
from byok_tasks.testing.sandbox import sandbox_key

TRANSCRIPT = "Ana: the contract goes out Friday. Ben: I'll book the review for Monday."


@dataclass(frozen=True)
class User:
    uid: str
    story: str
    keys: dict[str, str] = field(default_factory=dict, repr=False)
    conversations: int = 4


def users() -> list[User]:
    """The demo's users; their keys are sandbox keys that make the sandbox play their story."""
    return [
        User("ana", "her own OpenAI key, healthy", {"openai": sandbox_key("openai", "ok")}, 6),
        User("ben", "his own OpenAI key, revoked", {"openai": sandbox_key("openai", "invalid")}, 30),
        User("chloe", "her own Anthropic key, out of credits", {"anthropic": sandbox_key("anthropic", "nocredit")}, 8),
        User("dev", "his own OpenAI key, rate-limited", {"openai": sandbox_key("openai", "ratelimited")}, 3),
        User("emma", "the platform's keys", {}, 10),
        User("farid", "the platform's keys", {}, 10),
    ]


def publisher_app(broker_url: str, key_store_url: str) -> Celery:
    """The web side's Celery app: it only knows the tasks' names, as many web apps do."""
    app = Celery("web", broker=broker_url, backend=broker_url)
    byok_tasks.celery.install(app, key_store=SealedKeyStore(key_store_url))
    return app


def handle_request(app: Celery, user: User, conversation: int) -> list[AsyncResult]:
    """One request: summarise a conversation and pull out its action items."""
    conversation_id = f"{user.uid}-{conversation}"
    # Every signed-in user has a context; only the providers they brought a key for are BYOK.
    with byok_context(user.uid, keys=user.keys):
        return [
            app.send_task("worker.summarize_conversation", (conversation_id, TRANSCRIPT)),
            app.send_task("worker.extract_action_items", (conversation_id, TRANSCRIPT)),
        ]


def publish_batch(app: Celery, batch: list[User]) -> list[AsyncResult]:
    results = []
    for user in batch:
        for conversation in range(user.conversations):
            results += handle_request(app, user, conversation)
    # A BYOK-only feature enqueued by a code path that forgot the context: refused, not run on our key.
    results.append(app.send_task("worker.rewrite_in_users_voice", ("ana-0", "Thanks for the meeting")))
    return results
