import dataclasses
import os
import shutil
import uuid

import pytest
from celery import current_app
from kombu.exceptions import ChannelError
from rest_framework.test import APIClient

from tasks_app import task_types
from tasks_app.tokens import user_token_issue
from tests.factories import UserFactory


def pytest_unconfigure(config):
    if os.environ.get("TESTS_OWN_VAR_DIR"):
        shutil.rmtree(os.environ["DJANGO_VAR_DIR"], ignore_errors=True)


def client_for(user) -> APIClient:
    """An API client that authenticates the way users do: with the user's token."""
    client = APIClient()
    _, raw_key = user_token_issue(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {raw_key}")
    return client


@pytest.fixture
def user(db):
    return UserFactory(username="alice")


@pytest.fixture
def other_user(db):
    return UserFactory(username="bob")


@pytest.fixture
def staff_user(db):
    return UserFactory(username="staff", is_staff=True)


@pytest.fixture
def api(user) -> APIClient:
    return client_for(user)


@pytest.fixture
def other_api(other_user) -> APIClient:
    return client_for(other_user)


@pytest.fixture
def unread_queue(monkeypatch) -> str:
    """diagnostics.sleep's messages go to a queue no worker reads, purged afterwards: a
    worker the integration tests left running would run the tasks under test."""
    queue = f"unread-{uuid.uuid4().hex[:8]}"
    sleep = task_types.get_task_type("diagnostics.sleep")
    monkeypatch.setitem(task_types._task_types, sleep.name, dataclasses.replace(sleep, queue=queue))
    yield queue
    broker_queue_discard(queue)


def broker_queue_discard(name: str) -> None:
    """Drop the messages of a test's own queue, which may never have been declared."""
    with current_app.connection_for_write() as connection, connection.channel() as channel:
        if connection.transport.driver_type == "amqp":
            # RabbitMQ keeps a declared queue, emptied or not, and refuses to purge one that
            # was never declared; deleting it does both, and leaves no queue per test behind.
            channel.queue_delete(name)
            return
        try:
            channel.queue_purge(name)
        except ChannelError:
            pass  # never declared: nothing to purge
