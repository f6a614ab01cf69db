"""Questions to the broker that the service's own code asks: is it there, how much waits.

Every connection made here is bounded: a broker that is down costs about a second, not the
minutes of kombu's default retry policy, and one that accepts connections but never answers
cannot hang the caller (a health check, a metrics scrape, reconciliation).
"""

import logging
import math

from celery import current_app
from django.conf import settings
from kombu import Connection
from kombu.exceptions import ChannelError
from kombu.exceptions import OperationalError as BrokerError

from tasks_app.models.task_record import DEFAULT_PRIORITY

logger = logging.getLogger(__name__)

BROKER_TIMEOUT = 1.0
# What a broker that cannot be reached raises: kombu's wrapper, or the socket's own error
# when it times out after the connection was made.
BROKER_UNREACHABLE = (BrokerError, OSError)


def broker_connection(*, timeout: float = BROKER_TIMEOUT) -> Connection:
    """A connection for reading (not yet connected) whose sockets give up after ``timeout``."""
    # Celery's broker_connection_timeout (4 s) wins over a connect_timeout argument, and
    # Redis ignores both: its socket options bound a connect to an unreachable host, and a
    # read from a broker that accepts connections but never answers (that one hangs forever).
    # RabbitMQ's client (py-amqp) takes its own three; each transport ignores the other's.
    return current_app.connection_for_read(
        transport_options={
            "socket_connect_timeout": timeout,
            "socket_timeout": timeout,
            "connect_timeout": timeout,
            "read_timeout": timeout,
            "write_timeout": timeout,
        }
    )


def broker_connect(connection: Connection, *, timeout: float = BROKER_TIMEOUT) -> None:
    """Connect ``connection`` now, or raise one of BROKER_UNREACHABLE at once."""
    # One attempt, no waiting between: the default policy retries for minutes.
    connection.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=timeout)


def broker_connection_error() -> str | None:
    """None when the broker accepts a connection, else why it does not."""
    try:
        with broker_connection() as connection:
            broker_connect(connection)
    except BROKER_UNREACHABLE as error:
        return str(error) or type(error).__name__
    return None


def broker_queue_sizes(*, queues: list[str]) -> dict[str, int | None]:
    """Messages waiting in each of ``queues`` (not those a worker holds); all None when the
    broker cannot be reached. One connection for all of them."""
    try:
        with broker_connection() as connection:
            broker_connect(connection)
            return {queue: _messages_waiting(connection, queue) for queue in queues}
    except BROKER_UNREACHABLE as error:
        logger.warning("broker unreachable, queues %s not checked: %s", ", ".join(queues), error)
        return dict.fromkeys(queues)


def broker_queue_size(queue: str) -> int | None:
    """Messages waiting in ``queue`` (not those a worker holds), or None if unknown."""
    return broker_queue_sizes(queues=[queue])[queue]


def _messages_waiting(connection: Connection, queue: str) -> int:
    # A channel per question: RabbitMQ closes the channel that asked about a missing queue.
    with connection.channel() as channel:
        try:
            declared = channel.queue_declare(queue=queue, passive=True)
        except ChannelError:
            return 0  # Redis deletes an empty queue's key: no queue, no messages
    return declared.message_count


def broker_is_rabbitmq_with_quorum_queues() -> bool:
    return settings.BROKER_KIND == "rabbitmq" and settings.RABBITMQ_QUEUE_TYPE == "quorum"


# RabbitMQ 4's quorum queues have two levels: a message whose priority is above 4 is "high"
# (served about twice as often as "normal"); RabbitMQ 3 quorum queues ignore priorities.
QUORUM_HIGH, QUORUM_NORMAL = 5, 0


def broker_priority(priority: int) -> int:
    """Our priority (0 lowest to 9 most urgent) as the configured broker reads it."""
    if settings.BROKER_KIND == "rabbitmq":
        if settings.RABBITMQ_QUEUE_TYPE == "quorum":
            # Only tasks raised above the default go ahead: most run at the default.
            return QUORUM_HIGH if priority > DEFAULT_PRIORITY else QUORUM_NORMAL
        return priority  # classic queues with x-max-priority 9 serve the highest first
    # Redis (priority_steps) serves 0 first; the filesystem broker ignores priorities.
    return 9 - priority


def broker_retry_delay(seconds: float) -> float:
    """The delay a retry's message gets for ``seconds`` asked: the same, except on RabbitMQ's
    quorum queues, where RabbitMQ itself holds the message (Celery's native delayed delivery)
    in steps of whole seconds and refuses a delay under one: rounded up to whole seconds."""
    if broker_is_rabbitmq_with_quorum_queues():
        return float(max(1, math.ceil(seconds)))
    return seconds
