"""What a worker does with one delivery of a task: claim, run the body, record the outcome.

The database record is the truth. Celery's own result row (django-celery-results) is
kept in agreement: a success is stored here, in the transaction that marks the record
succeeded (one commit for both, and never one without the other); a failure or retry is
stored by Celery itself; a cancel is stored as REVOKED here, since the body's ``Ignore``
leaves Celery's row alone.

Every write the worker makes is fenced by its attempt number: if the task was given to
another worker meanwhile (this one was presumed dead), this one's writes change nothing.
"""

import logging
import time
import traceback
from contextlib import contextmanager
from typing import NoReturn

from celery import Task, states
from celery.exceptions import Ignore, SoftTimeLimitExceeded
from django.db import DatabaseError, transaction
from django_celery_results.models import TaskResult

from tasks_app import selectors, transitions
from tasks_app.broker import broker_retry_delay
from tasks_app.errors import TaskCancelled
from tasks_app.models import TaskRecord, TaskStatus
from tasks_app.task_types import TaskType
from tasks_app.transitions import Progress
from tasks_app.watch import hold_progress, watched

logger = logging.getLogger(__name__)

__all__ = ["TaskCancelled", "TaskContext", "execute_task_record"]


class TaskContext:
    """Handed to every task body: report progress, and learn whether to stop."""

    # Progress is written at most this often, so a body may report every page or row
    # without its database writes costing more than the work itself. The last step is
    # always written: with the task's finish if the body ends within this time (a short
    # task then writes no progress of its own), else by the watch (watch.py).
    PROGRESS_INTERVAL_SECONDS = 0.1

    def __init__(self, *, record: TaskRecord):
        self.task_id = str(record.pk)
        self.task_type = record.task_type
        self.owner_id = record.owner_id
        self.attempt = record.attempts
        self.completed = False
        self.completed_result: dict | None = None
        self._last_progress_write = float("-inf")
        # The last step, left for the finish to write (see PROGRESS_INTERVAL_SECONDS).
        self.held_progress: Progress | None = None

    @contextmanager
    def complete_atomically(self, result: dict | None = None):
        """The database writes made in this block commit with the task's success, or not at all.

        For bodies whose effect is a database change: a worker that dies before the end
        of the block leaves no trace, so the redelivered attempt starts clean, and an
        attempt that lost the task (cancelled, or given to another worker) rolls back.
        Keep the block short: it holds a transaction.
        """
        with transaction.atomic():
            yield
            if not transitions.task_mark_succeeded(
                task_id=self.task_id,
                result=result,
                attempt=self.attempt,
                progress=self.held_progress,
            ):
                raise TaskCancelled(self.task_id)
        self.completed = True
        self.completed_result = result

    def report_progress(self, current: int, total: int | None = None, message: str = "") -> None:
        """Store progress; raises ``TaskCancelled`` if the task was cancelled meanwhile.

        The last step (``current >= total``) is held for the finish instead (see
        ``PROGRESS_INTERVAL_SECONDS``): it checks for no cancel, and a cancel that came
        meanwhile wins at the finish.
        """
        now = time.monotonic()
        is_last_step = total is not None and current >= total
        if is_last_step and self.PROGRESS_INTERVAL_SECONDS:
            self.held_progress = Progress(current=current, total=total, message=message)
            if hold_progress(
                task_id=self.task_id,
                attempt=self.attempt,
                progress=self.held_progress,
                seconds=self.PROGRESS_INTERVAL_SECONDS,
            ):
                return
            self.held_progress = None  # not watched here (a body run outside a worker)
        if self.held_progress is not None:  # a report after the last step replaces it
            self.held_progress = None
            hold_progress(task_id=self.task_id, attempt=self.attempt, progress=None, seconds=0)
        if now - self._last_progress_write < self.PROGRESS_INTERVAL_SECONDS and not is_last_step:
            return
        self._last_progress_write = now
        if not transitions.task_report_progress(
            task_id=self.task_id,
            current=current,
            total=total,
            message=message,
            attempt=self.attempt,
        ):
            raise TaskCancelled(self.task_id)

    def write_held_progress(self) -> None:
        """Write the last step the body left for a finish that will not write it (the body
        failed, or was cancelled): the record shows how far this attempt got."""
        if self.held_progress is None or self.completed:
            return
        try:
            transitions.task_keep_progress(
                task_id=self.task_id, attempt=self.attempt, progress=self.held_progress
            )
        except DatabaseError:
            logger.warning("could not write the last progress id=%s", self.task_id)
        self.held_progress = None

    def raise_if_cancelled(self) -> None:
        """A cheap check for bodies that have no progress to report for a while."""
        if not transitions.task_is_running(task_id=self.task_id, attempt=self.attempt):
            raise TaskCancelled(self.task_id)


def execute_task_record(*, task_type: TaskType, task_id: str, celery_task: Task) -> dict | None:
    record = transitions.task_claim(task_id=task_id, worker=celery_task.request.hostname or "")
    if record is None:
        _skip_unclaimed(task_id=task_id, task_type=task_type, celery_task=celery_task)
    attempt = record.attempts
    log_context = f"id={task_id} type={task_type.name} owner={record.owner_id} attempt={attempt}"
    logger.info("task started %s", log_context)

    context = TaskContext(record=record)
    try:
        result = _run_body(task_type, context, record.input)
    except TaskCancelled:
        logger.info("task stopped after cancel %s", log_context)
        _store_revoked(celery_task, task_id)
    except SoftTimeLimitExceeded:
        # Raised by this attempt's own watch (watch.py): no other process signals it.
        if context.completed:  # its success committed just before the limit struck
            logger.info("task succeeded %s", log_context)
            return context.completed_result
        if transitions.task_mark_timed_out(
            task_id=task_id,
            error_message=f"The task ran past its time limit of {task_type.soft_time_limit} s.",
            attempt=attempt,
        ):
            logger.warning("task timed out %s", log_context)
            raise
        logger.info("task stopped after cancel %s", log_context)
        _store_revoked(celery_task, task_id)
    except Exception as error:
        # Raised after this attempt was cancelled, the error is the cancel's doing, not a
        # failure: a library that catches broadly (pypdf has ``except Exception``) turned the
        # TaskCancelled that the watch raised into an error of its own, or the body found its
        # work taken away (a document cancelled just as it started).
        if selectors.task_was_cancelled(task_id=task_id, attempt=attempt):
            logger.info("task stopped after cancel %s: %s", log_context, type(error).__name__)
            _store_revoked(celery_task, task_id)
        retries_done = celery_task.request.retries
        error_fields = {
            "error_type": type(error).__name__,
            "error_message": str(error) or type(error).__name__,
            "error_traceback": traceback.format_exc(),
            "attempt": attempt,
        }
        if task_type.retry.should_retry(error, retries_done=retries_done):
            countdown = broker_retry_delay(task_type.retry.countdown(retries_done=retries_done))
            # Marked retrying before the retry message exists, so its delivery can claim.
            if not transitions.task_mark_retrying(
                task_id=task_id, countdown=countdown, **error_fields
            ):
                _store_revoked(celery_task, task_id)
            logger.warning("task will retry in %ss %s: %s", countdown, log_context, error)
            # The record's queue, named: without it, a countdown on RabbitMQ's quorum queues
            # (native delayed delivery) routes the retry to the default queue.
            raise celery_task.retry(exc=error, countdown=countdown, queue=record.queue) from error
        transitions.task_mark_failed(task_id=task_id, **error_fields)
        logger.warning("task failed %s: %s", log_context, error)
        raise

    if context.completed:  # the body recorded its success itself (complete_atomically)
        logger.info("task succeeded %s", log_context)
        return result
    result_row = _success_row(celery_task, task_id, result)
    succeeded = transitions.task_mark_succeeded(
        task_id=task_id,
        result=result,
        attempt=attempt,
        progress=context.held_progress,
        result_row=result_row,
        task_type=task_type,
        in_workflow=record.workflow_id is not None,
    )
    if succeeded and result_row is not None:
        # Read by Celery's mark_as_done for this request only: the row is written.
        celery_task.request.ignore_result = True
    if not succeeded:
        # Cancelled while finishing: the cancel wins and the result is dropped.
        context.write_held_progress()
        logger.info("task finished after cancel, result dropped %s", log_context)
        _store_revoked(celery_task, task_id)
    logger.info("task succeeded %s", log_context)
    return result


def _run_body(task_type: TaskType, context: TaskContext, task_input: dict) -> dict | None:
    try:
        with watched(
            task_id=context.task_id,
            attempt=context.attempt,
            soft_time_limit=task_type.soft_time_limit,
        ):
            return task_type.body(context, **task_input)
    except BaseException:
        context.write_held_progress()  # no success will write it
        raise


def _success_row(celery_task: Task, task_id: str, result: dict | None) -> TaskResult | None:
    """Celery's SUCCESS row as its backend would write it, for the finish to write in its own
    commit (the backend's own store is a read, then an insert in a transaction of its own);
    None where Celery would store nothing.
    """
    request = celery_task.request
    if request.is_eager and not celery_task.store_eager_result:
        return None  # apply() stores nothing unless asked, nor does it here
    backend = celery_task.backend
    content_type, content_encoding, encoded_result = backend.encode_content(result)
    meta = {**(getattr(request, "meta", None) or {}), "children": []}  # as the backend's
    _, _, encoded_meta = backend.encode_content(meta)
    return TaskResult(
        task_id=task_id,
        status=states.SUCCESS,
        result=encoded_result,
        content_type=content_type,
        content_encoding=content_encoding,
        meta=encoded_meta,
        # What CELERY_RESULT_EXTENDED adds (django-celery-results' _get_extended_properties).
        **backend._get_extended_properties(request, None),
    )


def _skip_unclaimed(*, task_id: str, task_type: TaskType, celery_task: Task) -> NoReturn:
    status = TaskRecord.objects.filter(pk=task_id).values_list("status", flat=True).first()
    logger.info(
        "task not claimed, skipping delivery id=%s type=%s status=%s",
        task_id,
        task_type.name,
        status or "no record",
    )
    if status == TaskStatus.CANCELLED:
        _store_revoked(celery_task, task_id)
    # Ignore leaves Celery's result row as it is: this delivery did nothing.
    raise Ignore()


def _store_revoked(celery_task: Task, task_id: str) -> NoReturn:
    celery_task.backend.mark_as_revoked(task_id, reason="cancelled", request=celery_task.request)
    raise Ignore()
