"""Write paths of task records: submit, dispatch, cancel, and the worker's transitions.

Every status change goes through ``TaskRecord.objects.transition`` (one conditional
UPDATE), so the web process, the worker and the signal handlers never overwrite each
other: whoever updates zero rows lost the race and leaves the record alone.
"""

import hashlib
import json
import logging
import secrets
from datetime import timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from tasks_app import admission
from tasks_app.dispatch import task_dispatch
from tasks_app.errors import IdempotencyKeyReused, TaskNotCancellable
from tasks_app.models import ApiKey, DeadLetter, PoolStall, TaskRecord, TaskStatus
from tasks_app.registry import TaskType, UnknownTaskType, get_task_type

logger = logging.getLogger(__name__)

# Final statuses that leave a dead letter behind: the task will not succeed by itself.
DEAD_STATUSES = frozenset({TaskStatus.FAILED, TaskStatus.TIMED_OUT})


@transaction.atomic
@transaction.atomic
def task_submit(
    *,
    owner: AbstractBaseUser,
    task_type: TaskType,
    input_data: dict[str, Any],
    priority: int | None = None,
    enforce_active_limit: bool = True,
) -> TaskRecord:
    """Record a job for ``owner`` and queue it once the record is committed.

    ``input_data`` must already be validated by ``task_type.input_serializer``. The
    broker message is sent after commit, so a worker never sees an id without a row.
    Past the owner's running limit the record waits, without a message, for a free slot
    (admission.py); past their active limit it raises ``ActiveTaskLimitReached``, unless
    ``enforce_active_limit`` is off (staff requeueing a dead letter).
    """
    status = admission.initial_status(owner_id=owner.pk, enforce_active_limit=enforce_active_limit)
    record = TaskRecord.objects.create(
        owner=owner,
        task_type=task_type.name,
        queue=task_type.queue,
        priority=task_type.priority if priority is None else priority,
        input=input_data,
        status=status,
    )
    if status == TaskStatus.QUEUED:
        transaction.on_commit(partial(task_dispatch, task_id=record.pk))
    logger.info(
        "task submitted id=%s type=%s owner=%s status=%s",
        record.pk,
        record.task_type,
        owner.pk,
        status,
    )
    return record


def task_submit_once(
    *,
    owner: AbstractBaseUser,
    task_type: TaskType,
    input_data: dict[str, Any],
    priority: int | None = None,
    idempotency_key: str,
) -> tuple[TaskRecord, bool]:
    """``task_submit`` at most once per ``idempotency_key`` of ``owner`` (within the TTL).

    Returns the record and whether it was created now. A key reused with a different
    submission raises ``IdempotencyKeyReused``: the client has a bug we must not hide.
    """
    fingerprint = _fingerprint(task_type=task_type, input_data=input_data, priority=priority)
    expired_before = timezone.now() - timedelta(seconds=settings.TASKS_IDEMPOTENCY_TTL_SECONDS)
    # A key older than the window is free again; its old task keeps no claim on it.
    TaskRecord.objects.filter(
        owner=owner, idempotency_key=idempotency_key, created_at__lt=expired_before
    ).update(idempotency_key=None)
    for _ in range(2):
        existing = TaskRecord.objects.filter(owner=owner, idempotency_key=idempotency_key).first()
        if existing is not None:
            if existing.request_fingerprint != fingerprint:
                raise IdempotencyKeyReused(key=idempotency_key)
            logger.info("task submission replayed id=%s key=%s", existing.pk, idempotency_key)
            return existing, False
        try:
            with transaction.atomic():
                record = task_submit(
                    owner=owner, task_type=task_type, input_data=input_data, priority=priority
                )
                TaskRecord.objects.filter(pk=record.pk).update(
                    idempotency_key=idempotency_key, request_fingerprint=fingerprint
                )
            return record, True
        except IntegrityError:
            continue  # a concurrent request with the same key won; return its task
    raise IdempotencyKeyReused(key=idempotency_key)


def _fingerprint(*, task_type: TaskType, input_data: dict, priority: int | None) -> str:
    submission = {"task_type": task_type.name, "input": input_data, "priority": priority}
    encoded = json.dumps(submission, sort_keys=True, cls=DjangoJSONEncoder)
    return hashlib.sha256(encoded.encode()).hexdigest()


def task_cancel(*, record: TaskRecord) -> TaskRecord:
    """Cancel a task that has not finished. Cancelling a cancelled task changes nothing.

    A queued task will be refused by every worker (the claim needs ``queued``); a running
    one stops within ``TASKS_CANCEL_CHECK_SECONDS``, or at its next progress report.
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
    # No revoke(): the record is the cancel. A queued task is refused at its claim; a
    # running one is stopped by its own watch (watch.py) or at its next progress report.
    # revoke(terminate=True) signalled whichever pool process had the task by pid, which
    # could already run the next task (issue 14).
    return record


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


def _held(task_id, attempt: int | None):
    """The record, if it is running in ``attempt`` (any attempt when None)."""
    records = TaskRecord.objects.filter(pk=task_id, status=TaskStatus.RUNNING)
    return records if attempt is None else records.filter(attempts=attempt)


def _attempt(attempt: int | None) -> Q | None:
    return None if attempt is None else Q(attempts=attempt)


def task_report_progress(
    *, task_id: str, current: int, total: int | None, message: str = "", attempt: int | None = None
) -> bool:
    """Store progress of a running task. False means it is no longer running: stop."""
    return bool(
        _held(task_id, attempt).update(
            progress_current=current,
            progress_total=total,
            progress_message=message[:255],
            heartbeat_at=timezone.now(),
        )
    )


def task_heartbeat(*, task_id: str, attempt: int | None = None) -> bool:
    """The worker still holds this running task. False: it is not running any more."""
    return bool(_held(task_id, attempt).update(heartbeat_at=timezone.now()))


def task_is_running(*, task_id: str, attempt: int | None = None) -> bool:
    return _held(task_id, attempt).exists()


def task_mark_succeeded(*, task_id: str, result: dict | None, attempt: int | None = None) -> bool:
    return _finish(
        task_id=task_id, to=TaskStatus.SUCCEEDED, only_if=_attempt(attempt), result=result
    )


def task_mark_failed(
    *,
    task_id: str,
    error_type: str,
    error_message: str,
    error_traceback: str = "",
    attempt: int | None = None,
) -> bool:
    return _finish(
        task_id=task_id,
        to=TaskStatus.FAILED,
        only_if=_attempt(attempt),
        error_type=error_type,
        error_message=error_message,
        error_traceback=error_traceback,
        error_history=_history_with(task_id, error_type, error_message, error_traceback),
    )


def task_mark_timed_out(*, task_id: str, error_message: str, attempt: int | None = None) -> bool:
    return _finish(
        task_id=task_id,
        to=TaskStatus.TIMED_OUT,
        only_if=_attempt(attempt),
        error_type="TimeLimitExceeded",
        error_message=error_message,
    )


def task_mark_retrying(
    *,
    task_id: str,
    error_type: str,
    error_message: str,
    error_traceback: str = "",
    countdown: float,
    attempt: int | None = None,
) -> bool:
    return TaskRecord.objects.transition(
        pk=task_id,
        to=TaskStatus.RETRYING,
        only_if=_attempt(attempt),
        error_type=error_type,
        error_message=error_message,
        error_traceback=error_traceback,
        error_history=_history_with(
            task_id, error_type, error_message, error_traceback, retry_in=countdown
        ),
        next_attempt_at=timezone.now() + timedelta(seconds=countdown),
    )


def _history_with(
    task_id,
    error_type: str,
    error_message: str,
    error_traceback: str,
    retry_in: float | None = None,
) -> list:
    # Only the worker holding the running task writes its history, so read-then-write
    # cannot lose an entry.
    record = TaskRecord.objects.only("attempts", "error_history").get(pk=task_id)
    entry = {
        "attempt": record.attempts,
        "error_type": error_type,
        "error_message": error_message,
        "traceback": error_traceback,
        "at": timezone.now(),
        "retry_in": retry_in,
    }
    return [*record.error_history, entry]


@transaction.atomic
def _finish(*, task_id, to: str, only_if: Q | None = None, **fields) -> bool:
    """Move a record to a final status, keep a dead letter of a failure, tell its type.

    One transaction: a task never ends failed without its dead-letter entry.
    """
    if not TaskRecord.objects.transition(
        pk=task_id, to=to, only_if=only_if, finished_at=timezone.now(), **fields
    ):
        return False
    record = TaskRecord.objects.get(pk=task_id)
    # Its slot is free (if it held one): the owner's next waiting task may go.
    transaction.on_commit(partial(admission.tasks_admit_waiting, owner_id=record.owner_id))
    if to in DEAD_STATUSES:
        _record_dead_letter(record)
    try:
        on_finished = get_task_type(record.task_type).on_finished
    except UnknownTaskType:
        on_finished = None
    if on_finished is not None:
        on_finished(record)
    return True


def _record_dead_letter(record: TaskRecord) -> None:
    DeadLetter.objects.create(
        task=record,
        owner_id=record.owner_id,
        task_type=record.task_type,
        input=record.input,
        final_status=record.status,
        error_type=record.error_type,
        error_message=record.error_message,
        attempts=record.error_history,
        task_created_at=record.created_at,
    )
    logger.warning(
        "task dead-lettered id=%s type=%s owner=%s attempts=%s: %s",
        record.pk,
        record.task_type,
        record.owner_id,
        record.attempts,
        record.error_message,
    )


def api_key_create(*, owner: AbstractBaseUser, name: str) -> tuple[ApiKey, str]:
    """Create a key for ``owner``. The raw key is returned once and never stored."""
    prefix = secrets.token_hex(4)
    raw_key = f"jsk_{prefix}_{secrets.token_urlsafe(32)}"
    api_key = ApiKey.objects.create(
        owner=owner, name=name, prefix=prefix, key_digest=ApiKey.digest(raw_key)
    )
    logger.info("api key created prefix=%s owner=%s", prefix, owner.pk)
    return api_key, raw_key


def pool_stall_record(
    *,
    worker: str,
    pid: int | None,
    task_id: str,
    task_type: str,
    waited_seconds: float,
    action: str,
) -> PoolStall:
    """Keep a trace of a wedged pool process that the worker's watchdog dealt with."""
    return PoolStall.objects.create(
        worker=worker,
        pid=pid,
        task_id=task_id,
        task_type=task_type,
        waited_seconds=round(waited_seconds, 1),
        action=action,
    )
