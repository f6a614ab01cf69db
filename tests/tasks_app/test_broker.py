"""The broker questions of tasks_app/broker.py, against the configured broker (the filesystem
one by default, Redis when CELERY_BROKER_URL says so) and against brokers that are down."""

import socket
import threading
import time
import uuid

import pytest
from celery import current_app

from tasks_app.broker import (
    BROKER_TIMEOUT,
    broker_connection_error,
    broker_queue_size,
    broker_queue_sizes,
)
from tests.conftest import broker_queue_discard


@pytest.fixture
def queue_with_messages():
    """``queue_with_messages(count)``: a new queue that no worker reads, holding ``count``
    messages (none: the queue was never declared). Purged afterwards."""
    made: list[str] = []

    def make(count: int) -> str:
        name = f"test-{uuid.uuid4().hex[:8]}"
        made.append(name)
        for _ in range(count):
            current_app.send_task("tests.never_run", queue=name)
        return name

    yield make
    for name in made:
        broker_queue_discard(name)


@pytest.fixture(
    params=[
        ("redis", "refusing"),
        ("redis", "silent"),
        ("amqp", "refusing"),
        ("amqp", "silent"),
    ],
    ids="-".join,
)
def unreachable_broker(request):
    """The broker read from is a Redis or RabbitMQ URL where nothing answers: the port
    refuses connections, or it accepts them (the kernel does, on a listening socket) and
    never answers a command."""
    scheme, behaviour = request.param
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = 1 if behaviour == "refusing" else silent.getsockname()[1]
        current_app.conf.broker_read_url = f"{scheme}://127.0.0.1:{port}/"
        yield
        current_app.conf.broker_read_url = None


def test_queue_sizes_count_the_messages_waiting(queue_with_messages):
    three, empty = queue_with_messages(3), queue_with_messages(0)

    assert broker_queue_sizes(queues=[three, empty]) == {three: 3, empty: 0}
    assert broker_queue_size(three) == 3


def test_the_configured_broker_has_no_connection_error():
    assert broker_connection_error() is None


def test_an_unreachable_broker_answers_within_its_timeouts(unreachable_broker):
    answers = {}

    def ask() -> None:
        answers["error"] = broker_connection_error()
        answers["sizes"] = broker_queue_sizes(queues=["default", "long"])
        answers["single"] = broker_queue_size("default")

    # In a thread: a read without a socket timeout would wait forever, not fail the test.
    asking = threading.Thread(target=ask, daemon=True)
    started = time.monotonic()
    asking.start()
    # Three questions, each at most two attempts of BROKER_TIMEOUT: not kombu's retries of
    # several seconds each, and not a read that waits forever for a silent broker.
    asking.join(timeout=6 * BROKER_TIMEOUT + 1)

    assert not asking.is_alive(), f"still asking after {time.monotonic() - started:.1f} s"
    assert answers["error"]  # the reason, in words
    assert (answers["sizes"], answers["single"]) == ({"default": None, "long": None}, None)
