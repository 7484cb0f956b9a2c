"""What waits in a broker queue, whatever the broker."""

from __future__ import annotations

from kombu import Connection, Exchange, Queue


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
