"""Services that repair what crashes leave behind; beat runs them, and so does worker start-up.

- ``tasks_recover_stale``: a running task whose worker stopped heartbeating is given back
  to the queue (or, after too many lost workers, failed with the reason "worker lost").
- ``tasks_redispatch_lost``: a task whose broker message never left (the relay was down,
  or the broker) or is gone (broker restarted without its data) is sent again.
- ``admission.tasks_admit_all_waiting``: waiting tasks whose owner has free slots are
  admitted (the finish that freed the slot may have died before admitting them).

``tasks_reconcile`` runs them all.

A redundant message is harmless: the claim lets only one delivery run a task.
"""

import logging
from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from tasks_app import admission, dispatch, transitions
from tasks_app.broker import broker_queue_size
from tasks_app.models import TaskRecord, TaskStatus

logger = logging.getLogger(__name__)

BATCH_SIZE = 500
# Between commit and the relay's publish a healthy row has no message yet for a moment.
UNDISPATCHED_GRACE = timedelta(seconds=5)


def tasks_reconcile(*, now=None) -> dict[str, int]:
    """Every repair, in order: beat runs it (operations' job tasks_reconcile), and so does
    worker start-up."""
    # Admission before the publish of what waits unsent: a long-waiting task admitted here
    # is sent in the same pass.
    return {
        **tasks_recover_stale(now=now),
        **admission.tasks_admit_all_waiting(),
        **tasks_redispatch_lost(now=now),
    }


def tasks_recover_stale(*, now=None) -> dict[str, int]:
    """Running tasks without a heartbeat for TASKS_HEARTBEAT_TIMEOUT_SECONDS: redeliver or fail."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.TASKS_HEARTBEAT_TIMEOUT_SECONDS)
    stale = Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True, started_at__lt=cutoff)
    counts = {"requeued": 0, "failed": 0}
    requeued = []
    candidates = TaskRecord.objects.running().filter(stale).values_list("pk", "attempts")
    for task_id, attempts in candidates[:BATCH_SIZE]:
        if attempts < settings.TASKS_WORKER_LOST_MAX_ATTEMPTS:
            # Only if still stale and still the same attempt, so a late heartbeat wins.
            if TaskRecord.objects.transition(
                pk=task_id,
                to=TaskStatus.QUEUED,
                only_if=stale & Q(attempts=attempts),
                worker="",
                dispatched_at=None,
            ):
                requeued.append(task_id)
                logger.warning("task requeued, worker lost id=%s attempt=%s", task_id, attempts)
        elif transitions.task_mark_failed(
            task_id=task_id,
            error_type="WorkerLost",
            error_message=(
                f"worker lost: the worker running this task stopped answering, "
                f"{attempts} times; it was not tried again."
            ),
            attempt=attempts,
        ):
            counts["failed"] += 1
    counts["requeued"] = len(requeued)
    if requeued:  # back in the outbox (no dispatched_at): sent now, locked against the relay
        dispatch.tasks_publish_pending(limit=len(requeued), task_ids=requeued)
    return counts


def tasks_redispatch_lost(*, now=None) -> dict[str, int]:
    """Send again the messages of queued and retrying tasks that no broker holds any more."""
    now = now or timezone.now()
    overdue = now - timedelta(seconds=settings.TASKS_REDISPATCH_AFTER_SECONDS)
    counts = {"never_sent": 0, "lost": 0, "overdue_retries": 0}

    # What the relay has not published (not running, or behind); the same locked publish,
    # so the two never send one commit twice.
    counts["never_sent"] = dispatch.tasks_publish_pending(
        limit=BATCH_SIZE, created_before=now - UNDISPATCHED_GRACE
    )

    # A queue that is empty while tasks of it have waited long: their messages are gone.
    waiting = TaskRecord.objects.filter(status=TaskStatus.QUEUED, dispatched_at__lt=overdue)
    for queue in waiting.values_list("queue", flat=True).distinct():
        if broker_queue_size(queue) != 0:
            continue
        for task_id in waiting.filter(queue=queue).values_list("pk", flat=True)[:BATCH_SIZE]:
            counts["lost"] += dispatch.task_dispatch(task_id=task_id)

    # A retry's message is held by the worker until it is due; if that worker died, it is gone.
    late_retries = TaskRecord.objects.filter(
        status=TaskStatus.RETRYING, next_attempt_at__lt=overdue
    )
    for task_id in late_retries.values_list("pk", flat=True)[:BATCH_SIZE]:
        counts["overdue_retries"] += dispatch.task_dispatch(
            task_id=task_id, statuses=(TaskStatus.RETRYING,)
        )
    if any(counts.values()):
        logger.warning("tasks dispatched again %s", counts)
    return counts
