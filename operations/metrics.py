"""Aggregate reads of task records, for GET /api/v1/tasks/metrics and GET /metrics (whose
finished counters come from operations/tallies.py).

Everything is counted in the database with a fixed number of queries, however many
records there are: counts are ``GROUP BY`` queries, percentiles are PostgreSQL's
``percentile_cont``. SQLite has no percentile function; there each percentile costs one
``ORDER BY ... LIMIT 2 OFFSET k`` query per task type, which reads two rows, not all.

Durations are ``finished_at - started_at`` of succeeded tasks. A claim sets
``started_at`` again, so a retried task's duration is that of its last, successful attempt.
"""

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import NotSupportedError, connections
from django.db.models import (
    Aggregate,
    Count,
    DurationField,
    ExpressionWrapper,
    F,
    Max,
    Min,
    Q,
    QuerySet,
    Sum,
)
from django.utils import timezone

from tasks_app.broker import broker_queue_sizes
from tasks_app.models import FINAL_STATUSES, TaskRecord, TaskStatus
from tasks_app.selectors import task_list_for_user

PERCENTILES = {"p50": 0.5, "p95": 0.95}
FAILURE_STATUSES = (TaskStatus.FAILED, TaskStatus.TIMED_OUT)
DURATION = ExpressionWrapper(F("finished_at") - F("started_at"), output_field=DurationField())


class PercentileCont(Aggregate):
    """``percentile_cont(fraction) WITHIN GROUP (ORDER BY expression)``, PostgreSQL only.

    The value below which ``fraction`` of the values lie, interpolated linearly between
    the two nearest values. django.contrib.postgres has no such aggregate.
    """

    function = "percentile_cont"
    name = "PercentileCont"
    template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"

    def __init__(self, expression, *, fraction: float, **extra):
        # Written into the SQL, not passed as a parameter: accept nothing but a number.
        fraction = float(fraction)
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"fraction must be between 0 and 1, not {fraction}")
        super().__init__(expression, fraction=fraction, **extra)

    def as_sql(self, compiler, connection, **extra_context):
        if connection.vendor != "postgresql":
            raise NotSupportedError("percentile_cont needs PostgreSQL")
        return super().as_sql(compiler, connection, **extra_context)


def task_metrics_for_user(
    *, user: AbstractBaseUser, window: timedelta, now=None
) -> dict[str, object]:
    """What the tasks ``user`` may see did in the last ``window`` (by ``created_at``).

    Staff see everyone's tasks and the broker's queue depths; other users their own
    tasks and ``queue_depths`` None. ``running`` counts running tasks of any age.
    ``retries`` are attempts beyond the first that started (after a transient error or
    a lost worker); ``retried_tasks`` the tasks that had any. Rates are shares of the
    finished tasks (succeeded, failed, timed out, cancelled); ``failure_rate`` counts
    failed and timed out ones. Both are None while nothing finished.
    """
    now = now or timezone.now()
    since = now - window
    # Aggregates need no owner join and no ordering; both would only slow them down.
    visible = task_list_for_user(user=user).select_related(None).order_by()
    # "Any status" changes no result, but lets the (status, created_at) index find the
    # window, one range per status; on created_at alone PostgreSQL scans the table.
    in_window = visible.filter(status__in=TaskStatus.values, created_at__gte=since)

    by_status = dict.fromkeys(TaskStatus.values, 0)
    task_types: dict[str, dict] = {}
    retries = retried_tasks = 0
    for row in _counts_by_type_and_status(in_window):
        by_status[row["status"]] += row["count"]
        retries += row["retries"]
        retried_tasks += row["retried"]
        counts = task_types.setdefault(row["task_type"], _empty_type_counts())
        counts["count"] += row["count"]
        if row["status"] in counts:  # per type, only final statuses have a column
            counts[row["status"]] += row["count"]
    durations = task_durations_by_type(records=in_window)
    for task_type, counts in task_types.items():
        counts["duration_seconds"] = durations.get(task_type, dict.fromkeys(("p50", "p95", "max")))

    finished = sum(by_status[status] for status in FINAL_STATUSES)
    failures = sum(by_status[status] for status in FAILURE_STATUSES)
    return {
        "window": {"seconds": int(window.total_seconds()), "since": since, "until": now},
        "scope": "all" if user.is_staff else "own",
        "total": sum(by_status.values()),
        "by_status": by_status,
        "finished": finished,
        "success_rate": _share(by_status[TaskStatus.SUCCEEDED], finished),
        "failure_rate": _share(failures, finished),
        "retries": retries,
        "retried_tasks": retried_tasks,
        "cancellations": by_status[TaskStatus.CANCELLED],
        "running": visible.filter(status=TaskStatus.RUNNING).count(),
        "queue_depths": queue_depths() if user.is_staff else None,
        "task_types": dict(sorted(task_types.items())),
    }


def task_durations_by_type(*, records: QuerySet[TaskRecord]) -> dict[str, dict]:
    """p50, p95 and max duration in seconds (rounded to ms) of the succeeded ``records``."""
    timed = records.filter(
        status=TaskStatus.SUCCEEDED, started_at__isnull=False, finished_at__isnull=False
    ).annotate(duration=DURATION)
    on_postgres = connections[timed.db].vendor == "postgresql"
    aggregates = {"count": Count("id"), "max": Max("duration")}
    if on_postgres:
        for name, fraction in PERCENTILES.items():
            aggregates[name] = PercentileCont("duration", fraction=fraction)

    durations = {}
    for row in timed.values("task_type").annotate(**aggregates).order_by():
        if not on_postgres:
            of_type = timed.filter(task_type=row["task_type"])
            for name, fraction in PERCENTILES.items():
                row[name] = _percentile_by_offset(of_type, count=row["count"], fraction=fraction)
        durations[row["task_type"]] = {name: _seconds(row[name]) for name in (*PERCENTILES, "max")}
    return durations


def tasks_running_count() -> int:
    return TaskRecord.objects.running().count()


@dataclass(frozen=True)
class QueuedTasks:
    count: int
    oldest_created_at: datetime | None


def tasks_queued_by_queue(*, queues: list[str]) -> dict[str, QueuedTasks]:
    """Queued records (submitted, not started yet) per queue: how many, and when the
    oldest was submitted. Every queue of ``queues`` is there, and any other that has some.

    One query over the queued range of the (status, created_at) index: its cost grows with
    the backlog, not with the table (a few ms per thousand queued records)."""
    waiting = dict.fromkeys(queues, QueuedTasks(count=0, oldest_created_at=None))
    rows = (
        TaskRecord.objects.filter(status=TaskStatus.QUEUED)
        .values("queue")
        .annotate(count=Count("id"), oldest=Min("created_at"))
        .order_by()
    )
    for row in rows:
        waiting[row["queue"]] = QueuedTasks(count=row["count"], oldest_created_at=row["oldest"])
    return waiting


@dataclass(frozen=True)
class OutboxBacklog:
    count: int
    oldest_created_at: datetime | None


def tasks_outbox_backlog() -> OutboxBacklog:
    """Submitted tasks whose message the relay has not sent yet: how many, and when the
    oldest was submitted. One read of the outbox's partial index, which holds only them."""
    outbox = TaskRecord.objects.outbox().aggregate(count=Count("pk"), oldest=Min("created_at"))
    return OutboxBacklog(count=outbox["count"], oldest_created_at=outbox["oldest"])


def queue_depths() -> dict[str, int | None]:
    """Messages waiting in each of TASKS_QUEUES; None where the broker could not be asked."""
    return broker_queue_sizes(queues=list(settings.TASKS_QUEUES))


def _counts_by_type_and_status(records: QuerySet[TaskRecord]) -> QuerySet:
    more_than_once = Q(attempts__gt=1)
    return (
        records.values("task_type", "status")
        .annotate(
            count=Count("id"),
            retries=Sum(F("attempts") - 1, filter=more_than_once, default=0),
            retried=Count("id", filter=more_than_once),
        )
        .order_by()
    )


def _empty_type_counts() -> dict[str, int]:
    return {"count": 0, "succeeded": 0, "failed": 0, "timed_out": 0, "cancelled": 0}


def _percentile_by_offset(durations: QuerySet, *, count: int, fraction: float) -> timedelta | None:
    """What percentile_cont computes, from the one or two values around the rank."""
    rank = fraction * (count - 1)
    below = math.floor(rank)
    nearest = list(
        durations.order_by("duration").values_list("duration", flat=True)[below : below + 2]
    )
    if not nearest:
        return None  # records went away since they were counted
    if len(nearest) == 1:
        return nearest[0]
    return nearest[0] + (nearest[1] - nearest[0]) * (rank - below)


def _seconds(duration: timedelta | None) -> float | None:
    return None if duration is None else round(duration.total_seconds(), 3)


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None
