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

import functools
import logging
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.db.models import Count, Exists, Min, OuterRef, Q, Subquery

from tasks_app.dispatch import OUTBOX_CHANNEL, outbox_notify
from tasks_app.errors import ActiveTaskLimitReached
from tasks_app.models import (
    ACTIVE_STATUSES,
    DISPATCHED_STATUSES,
    TaskQuota,
    TaskRecord,
    TaskStatus,
)
from tasks_app.models.state_machine import typed_values

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


def owner_load_locked(owner_id, *, wake_relay_if_free: bool = False) -> OwnerLoad:
    """The owner's limits and unfinished tasks, with the owner locked until the transaction ends.

    With ``wake_relay_if_free``, the relay is woken at commit when the owner has a free slot
    (``outbox_notify``): what a submit of queued records needs, in the same round trip.
    """
    if connection.vendor == "postgresql":
        return _owner_load_locked_postgresql(owner_id, wake_relay=wake_relay_if_free)
    # Elsewhere (SQLite) the write lock serializes every write transaction already; the
    # row lock below is a no-op, kept for other databases.
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
    load = OwnerLoad(
        max_active=settings.TASKS_MAX_ACTIVE_PER_USER if max_active is None else max_active,
        max_running=settings.TASKS_MAX_RUNNING_PER_USER if max_running is None else max_running,
        **counts,
    )
    if wake_relay_if_free and load.free_slots:
        outbox_notify()
    return load


def _owner_load_locked_postgresql(owner_id, *, wake_relay: bool) -> OwnerLoad:
    """``owner_load_locked`` in one round trip, where the ORM took three (lock, count, NOTIFY).

    Exact under concurrent submits: the lock and the counts are two statements, and under
    READ COMMITTED each statement sees what was committed when it started. The counts
    start once the lock is held, so they include every task the owner's previous lock
    holders committed (one statement that locked and counted would count from a snapshot
    taken before its wait for the lock, and miss them). PostgreSQL's simple query protocol,
    which Django's client-side binding cursor uses, runs the two statements of one query
    string one after the other, each with a snapshot of its own.

    The NOTIFY (``pg_notify``) is queued only when there is a free slot, the condition
    under which the caller creates queued records; PostgreSQL delivers it at commit, and
    drops it if the transaction (or the savepoint) rolls back, as on ``ActiveTaskLimitReached``.
    """
    lock, load = _owner_load_statements()
    params = {
        "owner": owner_id,
        "default_active": settings.TASKS_MAX_ACTIVE_PER_USER,
        "default_running": settings.TASKS_MAX_RUNNING_PER_USER,
        "wake_relay": wake_relay,
        "channel": OUTBOX_CHANNEL,
    }
    with connection.cursor() as cursor:
        if connection.settings_dict["OPTIONS"].get("server_side_binding") is True:
            # The extended protocol takes one statement at a time: two round trips.
            cursor.execute(lock, params)
            cursor.execute(load, params)
        else:
            cursor.execute(f"{lock};\n{load}", params)
            cursor.nextset()
        max_active, max_running, active, dispatched, _notified = cursor.fetchone()
    return OwnerLoad(
        max_active=max_active, max_running=max_running, active=active, dispatched=dispatched
    )


def _load_of_owner() -> str:
    """The owner's limits (their quota, else the defaults), unfinished tasks, and those of
    them that hold a broker message: one row (PostgreSQL)."""
    quote = connection.ops.quote_name
    records = quote(TaskRecord._meta.db_table)
    quotas = quote(TaskQuota._meta.db_table)
    active = ", ".join(f"'{status}'" for status in sorted(ACTIVE_STATUSES))
    dispatched = ", ".join(f"'{status}'" for status in sorted(DISPATCHED_STATUSES))
    return f"""SELECT COALESCE(quota.max_active, %(default_active)s) AS max_active,
        COALESCE(quota.max_running, %(default_running)s) AS max_running,
        counts.active, counts.dispatched
    FROM (
        SELECT count(*) AS active, count(*) FILTER (WHERE status IN ({dispatched})) AS dispatched
        FROM {records} WHERE owner_id = %(owner)s AND status IN ({active})
    ) counts
    LEFT JOIN {quotas} quota ON quota.user_id = %(owner)s"""


@functools.cache
def _owner_lock_statement() -> str:
    """The lock of the owner's row (PostgreSQL): every admission of theirs takes it first."""
    users = connection.ops.quote_name(get_user_model()._meta.db_table)
    return f"SELECT 1 FROM {users} WHERE id = %(owner)s FOR UPDATE"


@functools.cache
def _owner_load_statements() -> tuple[str, str]:
    """The lock of the owner's row, and the read of their limits and counts (PostgreSQL)."""
    load = f"""SELECT load.max_active, load.max_running, load.active, load.dispatched,
    CASE WHEN %(wake_relay)s AND load.dispatched < load.max_running
        THEN pg_notify(%(channel)s, '') END
FROM ({_load_of_owner()}) load"""
    return _owner_lock_statement(), load


def initial_status(*, owner_id, enforce_active_limit: bool = True) -> str:
    """``queued`` or ``waiting`` for a record about to be created; call inside its transaction.

    When ``queued``, the relay is woken at commit (``outbox_notify``). Raises
    ``ActiveTaskLimitReached`` when the owner already has ``max_active`` unfinished.
    """
    load = owner_load_locked(owner_id, wake_relay_if_free=True)
    if enforce_active_limit and load.active >= load.max_active:
        raise ActiveTaskLimitReached(limit=load.max_active)
    return TaskStatus.QUEUED if load.free_slots else TaskStatus.WAITING


def record_create_admitted(record: TaskRecord, *, enforce_active_limit: bool = True) -> TaskRecord:
    """Insert ``record`` (unsaved) as ``queued`` or ``waiting``, as its owner's load allows.

    What ``initial_status`` and a save do, with the same exactness and the same NOTIFY, but
    on PostgreSQL outside a transaction in one round trip instead of four (BEGIN, lock and
    load, INSERT, COMMIT): the owner's lock and an ``INSERT … SELECT`` from their load are
    the two statements of one query string, which PostgreSQL runs as one transaction. Its
    statement is built once per process; the record's values are each call's own.

    Raises ``ActiveTaskLimitReached`` when the owner already has ``max_active`` unfinished
    (and ``enforce_active_limit``); nothing is inserted then, and the relay is not woken.
    """
    one_round_trip = (
        connection.vendor == "postgresql"
        and not connection.in_atomic_block
        and connection.settings_dict["OPTIONS"].get("server_side_binding") is not True
    )
    if not one_round_trip:
        with transaction.atomic():
            record.status = initial_status(
                owner_id=record.owner_id, enforce_active_limit=enforce_active_limit
            )
            record.save(force_insert=True)
        return record
    fields = [field for field in TaskRecord._meta.concrete_fields if field.name != "status"]
    values = {
        f"value_{number}": field.get_db_prep_save(field.pre_save(record, add=True), connection)
        for number, field in enumerate(fields)
    }
    lock, create = _admitted_insert_statements(tuple(field.name for field in fields))
    params = {
        **values,
        "owner": record.owner_id,
        "default_active": settings.TASKS_MAX_ACTIVE_PER_USER,
        "default_running": settings.TASKS_MAX_RUNNING_PER_USER,
        "enforce_active": enforce_active_limit,
        "channel": OUTBOX_CHANNEL,
    }
    with connection.cursor() as cursor:
        cursor.execute(f"{lock};\n{create}", params)
        cursor.nextset()
        max_active, status, _notified = cursor.fetchone()
    if status is None:
        raise ActiveTaskLimitReached(limit=max_active)
    record.status = status
    # Saved, as QuerySet.bulk_create marks the objects it inserted.
    record._state.adding = False
    record._state.db = connection.alias
    return record


@functools.cache
def _admitted_insert_statements(names: tuple[str, ...]) -> tuple[str, str]:
    """The owner's lock, and the insert of a record from their load (PostgreSQL): its
    status is ``queued`` with a free running slot, else ``waiting``; no row past the active
    limit. The relay's NOTIFY is queued only for a record inserted ``queued``."""
    quote = connection.ops.quote_name
    meta = TaskRecord._meta
    fields = [meta.get_field(name) for name in names]
    values = typed_values(
        fields, [f"%(value_{number})s" for number in range(len(fields))], connection
    )
    columns = ", ".join(quote(field.column) for field in fields)
    admitted = "(NOT %(enforce_active)s OR load.active < load.max_active)"
    has_slot = "load.dispatched < load.max_running"
    create = f"""WITH load AS MATERIALIZED ({_load_of_owner()}), inserted AS (
    INSERT INTO {quote(meta.db_table)} ({columns}, {quote(meta.get_field("status").column)})
    SELECT {values},
        CASE WHEN {has_slot} THEN '{TaskStatus.QUEUED}' ELSE '{TaskStatus.WAITING}' END
    FROM load WHERE {admitted}
    RETURNING status
)
SELECT load.max_active, (SELECT status FROM inserted),
    CASE WHEN {admitted} AND {has_slot} THEN pg_notify(%(channel)s, '') END
FROM load"""
    return _owner_lock_statement(), create


# Whether a task record's owner has tasks waiting: an annotation a finish asks for in its
# own statement (transitions.task_finish), since most owners have nothing waiting and a
# separate read cost each finished task a round trip.
owner_has_waiting = Exists(
    TaskRecord.objects.filter(owner_id=OuterRef("owner_id"), status=TaskStatus.WAITING)
)


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
