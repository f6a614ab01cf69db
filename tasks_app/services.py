"""Write paths of task records: submit, dispatch, cancel, and the worker's transitions.

Every status change goes through ``TaskRecord.objects.transition`` (one conditional
UPDATE), so the web process, the worker and the signal handlers never overwrite each
other: whoever updates zero rows lost the race and leaves the record alone.
"""

import logging
import secrets
from functools import partial
from typing import Any

from celery import current_app
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerError

from tasks_app.errors import TaskNotCancellable
from tasks_app.models import ApiKey, TaskRecord, TaskStatus
from tasks_app.registry import TaskType, UnknownTaskType, get_task_type

logger = logging.getLogger(__name__)


@transaction.atomic
def task_submit(
    *,
    owner: AbstractBaseUser,
    task_type: TaskType,
    input_data: dict[str, Any],
    priority: int | None = None,
) -> TaskRecord:
    """Record a job for ``owner`` and queue it once the record is committed.

    ``input_data`` must already be validated by ``task_type.input_serializer``. The
    broker message is sent after commit, so a worker never sees an id without a row.
    """
    record = TaskRecord.objects.create(
        owner=owner,
        task_type=task_type.name,
        queue=task_type.queue,
        priority=task_type.priority if priority is None else priority,
        input=input_data,
    )
    transaction.on_commit(partial(task_dispatch, task_id=record.pk))
    logger.info("task submitted id=%s type=%s owner=%s", record.pk, record.task_type, owner.pk)
    return record


def task_dispatch(*, task_id) -> bool:
    """Send the broker message of a queued record. False when the broker is unreachable.

    The record stays ``queued`` either way: a broker outage delays a task, never loses it.
    """
    record = TaskRecord.objects.filter(pk=task_id, status=TaskStatus.QUEUED).first()
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


def task_cancel(*, record: TaskRecord) -> TaskRecord:
    """Cancel a task that has not finished. Cancelling a cancelled task changes nothing.

    A queued task will be refused by every worker (the claim needs ``queued``); a running
    one is told to stop through ``revoke`` and sees the cancel at its next progress report.
    Raises ``TaskNotCancellable`` for a task that already succeeded, failed or timed out.
    """
    cancelled = _finish(
        task_id=record.pk, to=TaskStatus.CANCELLED, cancel_requested_at=timezone.now()
    )
    record.refresh_from_db()
    if not cancelled:
        if record.status == TaskStatus.CANCELLED:
            return record
        raise TaskNotCancellable(status=record.status)

    logger.info("task cancelled id=%s type=%s", record.pk, record.task_type)
    # SIGUSR1 raises SoftTimeLimitExceeded inside the running task, so its cleanup
    # (finally blocks, temporary files) still runs; it then finds itself cancelled.
    # Terminating a task that has not started is harmless: it is only marked revoked.
    transaction.on_commit(partial(_revoke_quietly, task_id=str(record.pk)))
    return record


def _revoke_quietly(*, task_id: str) -> None:
    # revoke() is only a hint: the database already says cancelled, which every worker
    # checks before and during a run. A broker outage must not fail the cancel.
    try:
        current_app.control.revoke(task_id, terminate=True, signal="SIGUSR1")
    except BrokerError:
        logger.warning("revoke not sent, broker unreachable id=%s", task_id)


def task_claim(*, task_id: str, worker: str) -> TaskRecord | None:
    """Atomically take a queued or retrying record for running. None if it is not ours.

    A duplicate delivery, a cancelled task or a finished one all end here with None.
    """
    now = timezone.now()
    claimed = TaskRecord.objects.transition(
        pk=task_id,
        to=TaskStatus.RUNNING,
        worker=worker,
        started_at=now,
        heartbeat_at=now,
        attempts=F("attempts") + 1,
    )
    return TaskRecord.objects.get(pk=task_id) if claimed else None


def task_report_progress(
    *, task_id: str, current: int, total: int | None, message: str = ""
) -> bool:
    """Store progress of a running task. False means it is no longer running: stop."""
    return bool(
        TaskRecord.objects.filter(pk=task_id, status=TaskStatus.RUNNING).update(
            progress_current=current,
            progress_total=total,
            progress_message=message[:255],
            heartbeat_at=timezone.now(),
        )
    )


def task_is_running(*, task_id: str) -> bool:
    return TaskRecord.objects.filter(pk=task_id, status=TaskStatus.RUNNING).exists()


def task_mark_succeeded(*, task_id: str, result: dict | None) -> bool:
    return _finish(task_id=task_id, to=TaskStatus.SUCCEEDED, result=result)


def task_mark_failed(
    *, task_id: str, error_type: str, error_message: str, error_traceback: str = ""
) -> bool:
    return _finish(
        task_id=task_id,
        to=TaskStatus.FAILED,
        error_type=error_type,
        error_message=error_message,
        error_traceback=error_traceback,
    )


def task_mark_timed_out(*, task_id: str, error_message: str) -> bool:
    return _finish(
        task_id=task_id,
        to=TaskStatus.TIMED_OUT,
        error_type="TimeLimitExceeded",
        error_message=error_message,
    )


def task_mark_retrying(*, task_id: str, error_type: str, error_message: str) -> bool:
    return TaskRecord.objects.transition(
        pk=task_id,
        to=TaskStatus.RETRYING,
        error_type=error_type,
        error_message=error_message,
    )


def task_mark_cancelled(*, task_id: str) -> bool:
    """Record a cancel that the worker saw first (a revoke that reached it directly)."""
    return _finish(task_id=task_id, to=TaskStatus.CANCELLED, cancel_requested_at=timezone.now())


def _finish(*, task_id, to: str, **fields) -> bool:
    """Move a record to a final status and tell its task type (``on_finished``)."""
    if not TaskRecord.objects.transition(pk=task_id, to=to, finished_at=timezone.now(), **fields):
        return False
    record = TaskRecord.objects.get(pk=task_id)
    try:
        on_finished = get_task_type(record.task_type).on_finished
    except UnknownTaskType:
        on_finished = None
    if on_finished is not None:
        on_finished(record)
    return True


def api_key_create(*, owner: AbstractBaseUser, name: str) -> tuple[ApiKey, str]:
    """Create a key for ``owner``. The raw key is returned once and never stored."""
    prefix = secrets.token_hex(4)
    raw_key = f"jsk_{prefix}_{secrets.token_urlsafe(32)}"
    api_key = ApiKey.objects.create(
        owner=owner, name=name, prefix=prefix, key_digest=ApiKey.digest(raw_key)
    )
    logger.info("api key created prefix=%s owner=%s", prefix, owner.pk)
    return api_key, raw_key
