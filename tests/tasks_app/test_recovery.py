"""Recovery services against the configured broker (no worker: nothing consumes here)."""

import uuid
from datetime import timedelta

import pytest
from celery import current_app
from django.utils import timezone

from tasks_app import recovery
from tasks_app.broker import broker_queue_size
from tasks_app.models import DeadLetter, TaskStatus
from tests.conftest import broker_queue_discard
from tests.factories import TaskRecordFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def private_queue():
    """A queue name no worker listens on, emptied afterwards."""
    name = f"test-{uuid.uuid4().hex[:8]}"
    yield name
    broker_queue_discard(name)


def ago(seconds: float):
    return timezone.now() - timedelta(seconds=seconds)


def test_running_task_without_heartbeat_is_requeued_and_dispatched(settings, private_queue):
    settings.TASKS_HEARTBEAT_TIMEOUT_SECONDS = 60
    lost = TaskRecordFactory(
        status=TaskStatus.RUNNING, attempts=1, heartbeat_at=ago(120), queue=private_queue
    )
    alive = TaskRecordFactory(status=TaskStatus.RUNNING, attempts=1, heartbeat_at=ago(5))

    counts = recovery.tasks_recover_stale()

    lost.refresh_from_db()
    alive.refresh_from_db()
    assert counts == {"requeued": 1, "failed": 0}
    assert (lost.status, lost.worker) == ("queued", "")
    assert lost.dispatched_at is not None
    assert broker_queue_size(private_queue) == 1
    assert alive.status == "running"


def test_task_whose_workers_died_too_often_fails_as_worker_lost(settings):
    settings.TASKS_WORKER_LOST_MAX_ATTEMPTS = 3
    record = TaskRecordFactory(status=TaskStatus.RUNNING, attempts=3, heartbeat_at=ago(600))

    counts = recovery.tasks_recover_stale()

    record.refresh_from_db()
    assert counts == {"requeued": 0, "failed": 1}
    assert record.status == "failed"
    assert record.error_message.startswith("worker lost")
    assert DeadLetter.objects.filter(task=record).exists()


def test_queued_task_never_sent_is_dispatched(private_queue):
    record = TaskRecordFactory(queue=private_queue, created_at=ago(30), dispatched_at=None)
    fresh = TaskRecordFactory(queue=private_queue, dispatched_at=None)  # on-commit pending

    counts = recovery.tasks_redispatch_lost()

    record.refresh_from_db()
    fresh.refresh_from_db()
    assert counts["never_sent"] == 1
    assert record.dispatched_at is not None and fresh.dispatched_at is None
    assert broker_queue_size(private_queue) == 1


def test_queued_task_whose_queue_is_empty_is_sent_again(settings, private_queue):
    settings.TASKS_REDISPATCH_AFTER_SECONDS = 60
    record = TaskRecordFactory(queue=private_queue, created_at=ago(300), dispatched_at=ago(300))

    counts = recovery.tasks_redispatch_lost()

    assert counts["lost"] == 1
    assert broker_queue_size(private_queue) == 1
    record.refresh_from_db()
    assert record.dispatched_at > ago(10)


def test_queued_task_behind_waiting_messages_is_left_alone(settings, private_queue):
    settings.TASKS_REDISPATCH_AFTER_SECONDS = 60
    current_app.send_task("diagnostics.sleep", args=["x"], queue=private_queue)
    TaskRecordFactory(queue=private_queue, created_at=ago(300), dispatched_at=ago(300))

    counts = recovery.tasks_redispatch_lost()

    assert counts["lost"] == 0
    assert broker_queue_size(private_queue) == 1


def test_overdue_retry_is_sent_again(settings, private_queue):
    settings.TASKS_REDISPATCH_AFTER_SECONDS = 60
    record = TaskRecordFactory(
        status=TaskStatus.RETRYING, queue=private_queue, next_attempt_at=ago(300)
    )

    counts = recovery.tasks_redispatch_lost()

    assert counts["overdue_retries"] == 1
    record.refresh_from_db()
    assert record.status == "retrying"
    assert broker_queue_size(private_queue) == 1
