"""Fair use of shared workers: how many tasks one user may have, and how many at once.

- ``TASKS_MAX_ACTIVE_PER_USER``: unfinished tasks (waiting, queued, running, retrying). A
  submit past it raises ``ActiveTaskLimitReached`` (429).
- ``TASKS_MAX_RUNNING_PER_USER``: tasks holding a broker message (queued, running,
  retrying). A record submitted past it is created ``waiting``, with no message; as the
  user's tasks finish, their waiting ones are admitted (``waiting`` → ``queued``), most
  urgent first, then oldest, and their messages sent.

So one user's backlog of a thousand tasks puts at most that many messages in front of
anybody else's. Staff can give a user other limits (``TaskQuota``, in the admin).

Admission must stay exact under races: two of a user's tasks finishing at once must not
both admit the same free slot. Each admission (and each submit) first locks the owner's
user row, so they take turns per user; on SQLite every write transaction already takes
the database's write lock up front (``transaction_mode`` IMMEDIATE). A worker that dies
between a finish and its admission leaves tasks waiting until reconciliation admits them
(``tasks_admit_all_waiting``, beat, every TASKS_RECONCILE_SECONDS).
"""

import logging
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Count, Min, OuterRef, Q, Subquery

from tasks_app.dispatch import outbox_notify
from tasks_app.errors import ActiveTaskLimitReached
from tasks_app.models import (
    ACTIVE_STATUSES,
    DISPATCHED_STATUSES,
    TaskQuota,
    TaskRecord,
    TaskStatus,
)

logger = logging.getLogger(__name__)

# Owners visited by one reconciliation pass.
BATCH_SIZE = 500


@dataclass(frozen=True)
class OwnerLoad:
    max_active: int
    max_running: int
    active: int
    dispatched: int

    @property
    def free_slots(self) -> int:
        return max(0, self.max_running - self.dispatched)


def owner_load_locked(owner_id) -> OwnerLoad:
    """The owner's limits and unfinished tasks, with the owner locked until the transaction ends."""
    quota = TaskQuota.objects.filter(user_id=OuterRef("pk"))
    limits = (
        get_user_model()
        .objects.select_for_update()
        .filter(pk=owner_id)
        # Subqueries, not a join: PostgreSQL locks no row on the nullable side of an outer join.
        .annotate(
            max_active=Subquery(quota.values("max_active")[:1]),
            max_running=Subquery(quota.values("max_running")[:1]),
        )
        .values_list("max_active", "max_running")
        .first()
    )
    max_active, max_running = limits or (None, None)
    counts = TaskRecord.objects.filter(owner_id=owner_id, status__in=ACTIVE_STATUSES).aggregate(
        active=Count("pk"), dispatched=Count("pk", filter=Q(status__in=DISPATCHED_STATUSES))
    )
    return OwnerLoad(
        max_active=settings.TASKS_MAX_ACTIVE_PER_USER if max_active is None else max_active,
        max_running=settings.TASKS_MAX_RUNNING_PER_USER if max_running is None else max_running,
        **counts,
    )


def initial_status(*, owner_id, enforce_active_limit: bool = True) -> str:
    """``queued`` or ``waiting`` for a record about to be created; call inside its transaction.

    Raises ``ActiveTaskLimitReached`` when the owner already has ``max_active`` unfinished.
    """
    load = owner_load_locked(owner_id)
    if enforce_active_limit and load.active >= load.max_active:
        raise ActiveTaskLimitReached(limit=load.max_active)
    return TaskStatus.QUEUED if load.free_slots else TaskStatus.WAITING


def tasks_admit_waiting(*, owner_id, known_waiting: bool = False) -> int:
    """Admit as many of the owner's waiting tasks as they have free slots; the relay sends them.

    ``known_waiting``: the caller has just seen waiting tasks (a finish asks in its own
    statement), so the cheap look before the lock is skipped.
    """
    waiting = TaskRecord.objects.filter(owner_id=owner_id, status=TaskStatus.WAITING)
    if not known_waiting and not waiting.exists():  # the common case: nothing waits
        return 0
    with transaction.atomic():
        load = owner_load_locked(owner_id)
        candidates = waiting.order_by("-priority", "created_at", "pk").values_list("pk", flat=True)
        admitted = [
            task_id
            for task_id in candidates[: load.free_slots]
            if TaskRecord.objects.transition(pk=task_id, to=TaskStatus.QUEUED)
        ]
        if admitted:
            outbox_notify()
    if admitted:
        logger.info("tasks admitted owner=%s count=%s", owner_id, len(admitted))
    return len(admitted)


def tasks_admit_all_waiting() -> dict[str, int]:
    """Reconciliation's pass: every owner with waiting tasks, longest-waiting owner first."""
    owners = (
        TaskRecord.objects.filter(status=TaskStatus.WAITING)
        .values("owner_id")
        .annotate(oldest=Min("created_at"))
        .order_by("oldest")
        .values_list("owner_id", flat=True)
    )
    admitted = sum(tasks_admit_waiting(owner_id=owner_id) for owner_id in owners[:BATCH_SIZE])
    return {"admitted": admitted}
