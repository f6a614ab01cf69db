"""Sending records' broker messages: the one place our code hands tasks to the broker.

A submit only commits its record (``queued``, no ``dispatched_at`` yet): the outbox row.
The relay (``relay.py``, the Procfile's ``relay`` process) publishes such rows in batches,
woken by PostgreSQL's NOTIFY at commit, or polling on SQLite; reconciliation publishes
whatever it left behind. Both go through ``tasks_publish_pending``, which locks the rows
it publishes, so two publishers never send the same commit twice.
"""

import logging
from datetime import datetime

from amqp.exceptions import MessageNacked
from celery import current_app
from django.db import connection, transaction
from django.utils import timezone
from kombu.exceptions import BatchPublishError
from kombu.exceptions import OperationalError as BrokerError

from tasks_app.asynchronous_commit import without_waiting_for_disk
from tasks_app.broker import broker_priority
from tasks_app.models import TaskRecord, TaskStatus

logger = logging.getLogger(__name__)

# The PostgreSQL channel the relay listens on.
OUTBOX_CHANNEL = "tasks_outbox"
# What a publish the broker did not take raises: unreachable, a Redis pipeline that failed,
# or a RabbitMQ that refused the message (a negative publisher confirm).
PUBLISH_FAILED = (BrokerError, BatchPublishError, MessageNacked)
# Broker commands one pipelined publish buffers before it sends them: more than a relay
# pass's messages need (a message takes one command, a few more with per-queue expiry).
PUBLISH_BATCH_MAX_COMMANDS = 10_000


def outbox_notify() -> None:
    """Wake the relay once the current transaction commits.

    PostgreSQL delivers a NOTIFY at commit, and never for a transaction that rolled back;
    repeats within one transaction are folded into one. SQLite has none: the relay polls.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"NOTIFY {OUTBOX_CHANNEL}")


def tasks_pending_exist() -> bool:
    """Whether committed queued records wait for their message: one read of a small index."""
    return TaskRecord.objects.outbox().exists()


def tasks_publish_pending(
    *, limit: int, created_before: datetime | None = None, task_ids: list | None = None
) -> int:
    """Publish the messages of up to ``limit`` queued records that have none, oldest first
    (of ``task_ids`` only, or created before ``created_before``, if given).

    Returns how many were published. The rows are locked until ``dispatched_at`` is written
    (PostgreSQL skips rows another publisher holds; SQLite's write lock serializes), so a
    commit is published once (after a database crash, what the last passes published may
    be published again). A publisher killed between its publish and its commit leaves
    the rows unmarked: they are published again, and the claim runs the task once. With the
    broker unreachable, what was not published waits for the next pass.
    """
    with transaction.atomic():
        pending = (
            TaskRecord.objects.outbox().order_by("created_at").select_for_update(skip_locked=True)
        )
        # The mark need not wait for the disk: a database crash that loses it makes the next
        # pass publish those rows again, and the claim runs each task once. It halves the
        # pass, and so the delay from a submit's commit to its message. Asked for in the
        # read, whose transaction is this one, not in a statement of its own.
        asynchronous = without_waiting_for_disk(own_transaction=True)
        if asynchronous is not None:
            pending = pending.filter(asynchronous)
        if created_before is not None:
            pending = pending.filter(created_at__lt=created_before)
        if task_ids is not None:
            pending = pending.filter(pk__in=task_ids)
        rows = list(pending.values_list("pk", "task_type", "queue", "priority")[:limit])
        if not rows:
            return 0
        published = _publish_rows(rows)
        if published:
            TaskRecord.objects.filter(pk__in=published).update(dispatched_at=timezone.now())
    return len(published)


def _publish_rows(rows: list[tuple]) -> list:
    """Publish each row's message, in one round trip where the broker allows (Redis): the ids
    whose message the broker surely took.

    Where the publishes are pipelined (kombu's ``Producer.batch``), a failure leaves it
    unknown which of them went out: none counts as published, and the next pass publishes
    them all again. A message sent twice is harmless (the claim runs the task once); one
    counted as sent that was not would wait for reconciliation.
    """
    published = []
    pipelined = False
    try:
        with current_app.producer_or_acquire() as producer:
            pipelined = _pipelines_publishes(producer.channel)
            with producer.batch(max_size=PUBLISH_BATCH_MAX_COMMANDS):
                for task_id, task_type, queue, priority in rows:
                    _publish(task_id, task_type, queue, priority, producer=producer)
                    published.append(task_id)
    except PUBLISH_FAILED:
        if pipelined:
            published = []
        logger.warning(
            "task publish failed, broker unreachable published=%s waiting=%s",
            len(published),
            len(rows) - len(published),
            exc_info=True,
        )
    return published


def _pipelines_publishes(channel) -> bool:
    """Whether kombu batches this transport's publishes (Redis) or sends each at once
    (the filesystem broker, RabbitMQ): the test kombu's ``Producer.batch`` makes."""
    return callable(getattr(channel, "create_publish_batch", None)) and getattr(
        channel, "supports_batch_publish", True
    )


def task_dispatch(*, task_id, statuses=(TaskStatus.QUEUED,)) -> bool:
    """Send again the message of a record whose message is gone. False if the broker is
    unreachable; the record stays waiting either way (reconciliation tries again)."""
    record = TaskRecord.objects.filter(pk=task_id, status__in=statuses).first()
    if record is None:
        return False
    try:
        _publish(record.pk, record.task_type, record.queue, record.priority)
    except PUBLISH_FAILED:
        logger.warning(
            "task dispatch failed, broker unreachable id=%s type=%s",
            record.pk,
            record.task_type,
            exc_info=True,
        )
        return False
    TaskRecord.objects.filter(pk=record.pk).update(dispatched_at=timezone.now())
    return True


def _publish(task_id, task_type: str, queue: str, priority: int, producer=None) -> None:
    current_app.send_task(
        task_type,
        args=[str(task_id)],
        task_id=str(task_id),
        queue=queue,
        priority=broker_priority(priority),
        producer=producer,
    )
