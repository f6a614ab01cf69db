"""Sending a record's broker message: the one place the web side talks to the broker.

Below ``services`` and ``admission``, which both send messages once their transaction commits.
"""

import logging

from celery import current_app
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerError

from tasks_app.models import TaskRecord, TaskStatus

logger = logging.getLogger(__name__)


def task_dispatch(*, task_id, statuses=(TaskStatus.QUEUED,)) -> bool:
    """Send the broker message of a waiting record. False when the broker is unreachable.

    The record stays waiting either way: a broker outage delays a task, never loses it
    (``recovery.tasks_redispatch_lost`` sends it again).
    """
    record = TaskRecord.objects.filter(pk=task_id, status__in=statuses).first()
    if record is None:
        return False
    try:
        current_app.send_task(
            record.task_type,
            args=[str(record.pk)],
            task_id=str(record.pk),
            queue=record.queue,
            # Brokers serve priority 0 first; our API says 9 is the most urgent.
            priority=9 - record.priority,
        )
    except BrokerError:
        logger.warning(
            "task dispatch failed, broker unreachable id=%s type=%s",
            record.pk,
            record.task_type,
            exc_info=True,
        )
        return False
    TaskRecord.objects.filter(pk=record.pk).update(dispatched_at=timezone.now())
    return True
