"""Celery signal handlers: what only the worker's own events can trigger.

- transitions that no task body can report, because the body is not running any more
  (hard time limit, worker lost);
- worker start-up: reconciliation, and freezing start-up objects out of the GC's way;
- the worker's database connections around each task, as Django treats them around a request.

Each handler does one thing, is a few lines, and never raises (a raising signal
handler would disturb the worker's own bookkeeping).

Celery's ``task_revoked`` is deliberately not turned into a cancel: Celery also sends it for
a task whose pool process was terminated (a shutdown, a pool restart), and only an owner's
or staff's cancel (``services.task_cancel``) may end a task ``cancelled``.
"""

import gc
import logging

from billiard.exceptions import WorkerLostError
from celery.exceptions import TimeLimitExceeded
from celery.signals import (
    celeryd_after_setup,
    task_failure,
    task_postrun,
    task_prerun,
    worker_process_init,
    worker_ready,
)
from celery.worker import state as worker_state
from django import db

from tasks_app import recovery, transitions
from tasks_app.task_types import UnknownTaskType, get_task_type

logger = logging.getLogger(__name__)


def connect_handlers() -> None:
    """Connect the handlers below to Celery's signals (tasks_app's ``ready()`` does, in every
    process; only a worker sends these signals)."""
    celeryd_after_setup.connect(remember_node_name, dispatch_uid="tasks_app.node_name")
    task_failure.connect(record_hard_failure, dispatch_uid="tasks_app.record_hard_failure")
    worker_process_init.connect(freeze_startup_objects, dispatch_uid="tasks_app.freeze_child")
    worker_ready.connect(freeze_startup_objects, dispatch_uid="tasks_app.freeze_main")
    worker_ready.connect(reconcile_on_worker_start, dispatch_uid="tasks_app.reconcile_on_start")
    task_prerun.connect(
        refresh_connections_before, dispatch_uid="tasks_app.refresh_connections_before"
    )
    task_postrun.connect(refresh_connections, dispatch_uid="tasks_app.refresh_connections_after")


def _is_ours(task_name: str | None) -> bool:
    try:
        get_task_type(task_name or "")
    except UnknownTaskType:
        return False
    return True


# This worker's node name (``name@host``), which its claims write as the record's
# ``worker``; None outside a worker.
_node_name: str | None = None


def remember_node_name(sender=None, **kwargs) -> None:
    """celeryd_after_setup, in the worker's main process: ``sender`` is its node name."""
    global _node_name
    _node_name = sender


def record_hard_failure(sender=None, task_id=None, exception=None, **kwargs) -> None:
    """running → timed_out on the hard time limit; running → failed when the worker died.

    Failures raised by the body itself are recorded by the body's runner, not here.

    Sent in the worker's main process, which does not know which attempt its pool process
    ran. If that process had hung, reconciliation may have given the task back meanwhile
    and another attempt run it: the record is marked only while this worker holds it, and
    not while another of its own pool processes runs the task again.
    """
    if task_id is None or not _is_ours(getattr(sender, "name", None)):
        return
    if _runs_here_again(task_id):
        logger.info("hard failure not recorded id=%s: this worker runs it again", task_id)
        return
    try:
        if isinstance(exception, TimeLimitExceeded):
            transitions.task_mark_timed_out(
                task_id=task_id,
                error_message=f"Killed at its hard time limit of {sender.time_limit} s.",
                claimed_by=_node_name,
            )
        elif isinstance(exception, WorkerLostError):
            transitions.task_mark_failed(
                task_id=task_id,
                error_type="WorkerLostError",
                error_message="worker lost: the process running the task exited unexpectedly.",
                claimed_by=_node_name,
            )
    except Exception:
        logger.exception("could not record failure id=%s", task_id)


def _runs_here_again(task_id: str) -> bool:
    """Whether another of this worker's requests for ``task_id`` is running (Celery has
    taken the finished one out of its active requests before this signal)."""
    return any(request.id == task_id for request in list(worker_state.active_requests))


def refresh_connections(sender=None, **kwargs) -> None:
    """Keep the task's database connection for the next task, unless it is broken or past
    ``CONN_MAX_AGE``, and check it (``CONN_HEALTH_CHECKS``) before its next use.

    What Django does around each request. Celery's own Django fixup would close every
    connection around every task instead (unless ``CELERY_DB_REUSE_MAX``, set in
    config/settings/celery.py): a new PostgreSQL connection per task cost more than
    the task's own writes. Not for a task run in the caller's process (``apply()``, in
    tests), whose connection belongs to the caller.
    """
    if not getattr(getattr(sender, "request", None), "is_eager", False):
        db.close_old_connections()


def refresh_connections_before(sender=None, **kwargs) -> None:
    """``refresh_connections``, without the health check before one of our tasks.

    Its first query is the claim, which reconnects once itself if the database dropped the
    connection meanwhile (``transitions.task_claim``); a check first cost every task one
    more round trip. The maintenance tasks keep Django's check.
    """
    refresh_connections(sender=sender, **kwargs)
    if _is_ours(getattr(sender, "name", None)):
        for connection in db.connections.all(initialized_only=True):
            connection.health_check_done = True  # Django's flag: checked for this task


def freeze_startup_objects(**kwargs) -> None:
    """Move everything loaded at start-up out of the garbage collector's sight.

    Django, Celery and the apps leave some 100k long-lived objects; without this every
    full collection walks them again, which made object-heavy task bodies (PDF parsing)
    a third slower in the worker than in a bare process. Runs in each pool child
    (worker_process_init) and in the main process, which runs tasks itself in the solo
    and threads pools (worker_ready).
    """
    gc.freeze()


def reconcile_on_worker_start(**kwargs) -> None:
    """A starting worker repairs what a crash left (beat reconciles every minute too)."""
    try:
        counts = recovery.tasks_reconcile()
        logger.info("reconciled at worker start-up %s", counts)
    except Exception:
        logger.exception("reconciliation at worker start-up failed")
    finally:
        db.connections.close_all()  # the main process keeps no connection between tasks
