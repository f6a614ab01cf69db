"""The worker's transitions of a task record: claim, progress, heartbeat, and its end.

Every status change goes through ``TaskRecord.objects.transition`` (one conditional
UPDATE), so the web process, the worker and the signal handlers never overwrite each
other: whoever updates zero rows lost the race and leaves the record alone. Writes that
take an ``attempt`` are fenced by it: an attempt presumed dead (its task given to another
worker) changes nothing.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import partial

from django.db import InterfaceError, OperationalError, connection, transaction
from django.db.models import F, Q
from django.utils import timezone
from django_celery_results.models import TaskResult

from tasks_app import admission
from tasks_app.asynchronous_commit import without_waiting_for_disk
from tasks_app.models import DeadLetter, TaskRecord, TaskStatus
from tasks_app.models.state_machine import UpsertAlong
from tasks_app.task_types import TaskType, UnknownTaskType, get_task_type

logger = logging.getLogger(__name__)

# Final statuses that leave a dead letter behind: the task will not succeed by itself.
DEAD_STATUSES = frozenset({TaskStatus.FAILED, TaskStatus.TIMED_OUT})

# Called in the finish's transaction for a step of a workflow: workflows.py registers it.
_workflow_step_finished: Callable[[TaskRecord], None] | None = None


def on_workflow_step_finished(callback: Callable[[TaskRecord], None]) -> None:
    global _workflow_step_finished  # noqa: PLW0603 - set once, from AppConfig.ready()
    _workflow_step_finished = callback


@dataclass(frozen=True)
class Progress:
    """What a running task reports of itself: ``current`` of ``total`` steps, and a message."""

    current: int
    total: int | None
    message: str = ""


def task_claim(*, task_id: str, worker: str) -> TaskRecord | None:
    """Atomically take a queued or retrying record for running. None if it is not ours.

    A duplicate delivery, a cancelled task or a finished one all end here with None.

    The claim commits without waiting for the disk. What it guards, one worker at a time,
    is the row lock of its UPDATE, not durability; and a database crash that loses it loses
    nothing else: the finish, which does wait, flushes the log up to and including the
    claim, and without the finish the task runs again either way (its record back to
    queued and redispatched, where a durable claim would have left it running until
    recovery found it stale). A short task then waits for the disk once, as plain Celery's
    does for its result row.
    """
    try:
        return _claim(task_id=task_id, worker=worker)
    except (InterfaceError, OperationalError):
        if connection.in_atomic_block:
            raise
        # The claim is a task's first query, made without a health check first (signals.py):
        # a connection the database dropped while idle (a restart, an idle timeout) fails
        # here. Once more on a new one. If the failed claim did commit, this one finds the
        # record running and skips the delivery; recovery hands the task back when its
        # heartbeat is overdue, so it runs late, never twice.
        logger.info("claim reconnects after a dropped connection id=%s", task_id)
        connection.close()
        return _claim(task_id=task_id, worker=worker)


# One instance for every claim, for the same reason as asynchronous_commit._CONDITION.
_NEXT_ATTEMPT = F("attempts") + 1


def _claim(*, task_id: str, worker: str) -> TaskRecord | None:
    now = timezone.now()
    # One statement: the worker needs the record (input, owner, attempt) it claimed.
    return TaskRecord.objects.transition_returning(
        pk=task_id,
        to=TaskStatus.RUNNING,
        only_if=without_waiting_for_disk(),
        worker=worker,
        started_at=now,
        heartbeat_at=now,
        attempts=_NEXT_ATTEMPT,
    )


def _held(task_id, attempt: int | None):
    """The record, if it is running in ``attempt`` (any attempt when None)."""
    records = TaskRecord.objects.filter(pk=task_id, status=TaskStatus.RUNNING)
    return records if attempt is None else records.filter(attempts=attempt)


def _attempt(attempt: int | None, *, claimed_by: str | None = None) -> Q | None:
    """Only the given attempt, and only if the given worker claimed it (``worker``)."""
    if claimed_by is None:  # every finish and progress report: kept to one Q
        return None if attempt is None else Q(attempts=attempt)
    if attempt is None:
        return Q(worker=claimed_by)
    return Q(attempts=attempt, worker=claimed_by)


def task_report_progress(
    *, task_id: str, current: int, total: int | None, message: str = "", attempt: int | None = None
) -> bool:
    """Store progress of a running task. False means it is no longer running: stop."""
    return bool(
        _unflushed(_held(task_id, attempt)).update(
            **_progress_fields(Progress(current=current, total=total, message=message)),
            heartbeat_at=timezone.now(),
            changed_at=timezone.now(),
        )
    )


def task_keep_progress(*, task_id: str, attempt: int, progress: Progress) -> None:
    """Store the attempt's last progress whatever its status now (it failed or was cancelled
    after reporting it): how far it got. Not if the task was given to another attempt."""
    TaskRecord.objects.filter(pk=task_id, attempts=attempt).update(
        **_progress_fields(progress), changed_at=timezone.now()
    )


def _progress_fields(progress: Progress | None) -> dict:
    if progress is None:
        return {}
    return {
        "progress_current": progress.current,
        "progress_total": progress.total,
        "progress_message": progress.message[:255],
    }


def _unflushed(records):
    """The records, for an update committed without waiting for the disk: the record's
    progress and heartbeat are a view of a running task, written again by the next report
    or heartbeat (asynchronous_commit.py)."""
    condition = without_waiting_for_disk()
    return records if condition is None else records.filter(condition)


def task_heartbeat(*, task_id: str, attempt: int | None = None) -> bool:
    """The worker still holds this running task. False: it is not running any more."""
    return bool(_unflushed(_held(task_id, attempt)).update(heartbeat_at=timezone.now()))


def task_is_running(*, task_id: str, attempt: int | None = None) -> bool:
    return _held(task_id, attempt).exists()


def task_mark_succeeded(
    *,
    task_id: str,
    result: dict | None,
    attempt: int | None = None,
    progress: Progress | None = None,
    result_row: TaskResult | None = None,
    task_type: TaskType | None = None,
    in_workflow: bool = False,
) -> bool:
    """running → succeeded; with ``result_row``, Celery's result row in the same commit.

    ``progress`` is the body's last step, which it left for the finish to write.

    On PostgreSQL, outside a caller's transaction, for a ``task_type`` without an
    ``on_finished`` hook, the move and the row are one autocommitted statement: the
    task's one wait for the disk, and one round trip where a transaction took four. Not
    for a workflow's step (``in_workflow``): its workflow moves in the same transaction.
    """
    fields = {"result": result, **_progress_fields(progress)}
    if result_row is None:
        return task_finish(
            task_id=task_id, to=TaskStatus.SUCCEEDED, only_if=_attempt(attempt), **fields
        )
    if (
        connection.vendor == "postgresql"
        and not connection.in_atomic_block
        and task_type is not None
        and task_type.on_finished is None
        and not in_workflow
    ):
        record = TaskRecord.objects.transition_returning(
            pk=task_id,
            to=TaskStatus.SUCCEEDED,
            only_if=_attempt(attempt),
            annotations={"owner_has_waiting": admission.owner_has_waiting},
            upsert_along=_result_row_upsert(result_row),
            returning=("owner",),  # not the result it has just written
            finished_at=timezone.now(),
            **fields,
        )
        if record is not None and record.owner_has_waiting:
            admission.tasks_admit_waiting(owner_id=record.owner_id, known_waiting=True)
        return record is not None
    with transaction.atomic(savepoint=False):
        if not task_finish(
            task_id=task_id, to=TaskStatus.SUCCEEDED, only_if=_attempt(attempt), **fields
        ):
            return False
        upsert = _result_row_upsert(result_row)
        TaskResult.objects.bulk_create(
            [result_row],
            update_conflicts=True,
            unique_fields=[upsert.conflict_field],
            update_fields=[field.name for field in upsert.updated_fields()],
        )
    return True


def _result_row_upsert(row: TaskResult) -> UpsertAlong:
    # An upsert: a retried task already has its RETRY row, whose start and creation stay.
    return UpsertAlong(row, conflict_field="task_id", kept=("date_created", "date_started"))


def task_mark_failed(
    *,
    task_id: str,
    error_type: str,
    error_message: str,
    error_traceback: str = "",
    attempt: int | None = None,
    claimed_by: str | None = None,
) -> bool:
    return task_finish(
        task_id=task_id,
        to=TaskStatus.FAILED,
        only_if=_attempt(attempt, claimed_by=claimed_by),
        **_error_fields(task_id, error_type, error_message, error_traceback),
    )


def task_mark_timed_out(
    *,
    task_id: str,
    error_message: str,
    attempt: int | None = None,
    claimed_by: str | None = None,
) -> bool:
    return task_finish(
        task_id=task_id,
        to=TaskStatus.TIMED_OUT,
        only_if=_attempt(attempt, claimed_by=claimed_by),
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
        **_error_fields(task_id, error_type, error_message, error_traceback, retry_in=countdown),
        next_attempt_at=timezone.now() + timedelta(seconds=countdown),
    )


def _error_fields(
    task_id,
    error_type: str,
    error_message: str,
    error_traceback: str,
    retry_in: float | None = None,
) -> dict:
    """The record's error fields for an attempt that failed, its history entry included."""
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
    return {
        "error_type": error_type,
        "error_message": error_message,
        "error_traceback": error_traceback,
        "error_history": [*record.error_history, entry],
    }


# No savepoint when called inside a transaction (the worker's success commits Celery's row
# with it): a failure here fails the caller's transaction as a whole, as it should.
@transaction.atomic(savepoint=False)
def task_finish(*, task_id, to: str, only_if: Q | None = None, **fields) -> bool:
    """Move a record to a final status, keep a dead letter of a failure, tell its type.

    One transaction: a task never ends failed without its dead-letter entry.
    """
    record = TaskRecord.objects.transition_returning(
        pk=task_id,
        to=to,
        only_if=only_if,
        annotations={"owner_has_waiting": admission.owner_has_waiting},
        finished_at=timezone.now(),
        **fields,
    )
    if record is None:
        return False
    if record.owner_has_waiting:
        # Its slot is free (if it held one): the owner's next waiting task may go. A task
        # submitted waiting while this finish commits is admitted by reconciliation, as one
        # submitted just after this worker died would be (admission.py).
        transaction.on_commit(
            partial(admission.tasks_admit_waiting, owner_id=record.owner_id, known_waiting=True)
        )
    if to in DEAD_STATUSES:
        _record_dead_letter(record)
    if record.workflow_id is not None and _workflow_step_finished is not None:
        _workflow_step_finished(record)
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
