"""The brokers the tests run on, and what waits in a broker queue, whatever the broker."""

from __future__ import annotations

import pytest
from kombu import Connection, Exchange, Queue

# The brokers a Celery test runs on: RabbitMQ's runs are marked, and skipped when it does not answer.
BROKERS = ["redis", pytest.param("rabbitmq", marks=pytest.mark.rabbitmq)]


def broker_for(request: pytest.FixtureRequest, broker: str) -> str:
    """The URL of ``broker`` (one of BROKERS), from the session's redis_url or rabbitmq_url fixture."""
    return str(request.getfixturevalue("redis_url" if broker == "redis" else "rabbitmq_url"))


def waiting_then_delete(broker_url: str, name: str) -> int:
    """How many messages wait in queue ``name`` (declared as Celery declares it), then delete the queue.

    Declared first: a task refused before it reached the broker may not have declared it.
    """
    with Connection(broker_url, connect_timeout=5) as connection:
        queue = Queue(name, Exchange(name), routing_key=name)(connection.default_channel)
        queue.exchange.declare()
        _, count, _ = queue.queue_declare()
        # Bound, as Celery binds it: kombu's Redis transport deletes a queue through its binding.
        queue.queue_bind()
        queue.delete()
        return int(count)
