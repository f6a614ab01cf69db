"""Finished-task counters that only go up: a tally of the records finished before a mark,
plus the records finished since.

Prometheus reads ``jobservice_tasks_finished_total`` and the duration histogram as counters:
a drop is a restart to it. Counted from the records alone, they dropped whenever retention
deleted old records, and a scrape read every record (0.6 s at a million). So:

- ``TaskTally`` holds, per task type and final status, the records that finished before
  the mark (``TaskTallyMark.counted_until``): counts, and the durations of succeeded ones;
- ``finished_totals`` adds the records finished since the mark to it, through the
  (status, finished_at) index: minutes of records, not all of them;
- ``tally_advance`` counts the records between the mark and a later time into the tally
  and moves the mark there, in one transaction. A scrape calls ``tally_advance_if_due``,
  which moves it when it is more than TALLY_STEP behind; retention calls ``tally_advance``
  before it deletes, and deletes only records finished before the mark: what it deletes
  is counted already.

No worker writes here: the tally moves at most once per TALLY_STEP, by whoever reads.

The mark stays TALLY_GRACE behind the clock, because a worker stamps ``finished_at`` before
its transaction commits: a record that commits after the mark passed its ``finished_at`` is
never counted. That takes a commit minutes late, or a worker's clock minutes slow; the
counters then miss the record, but still never go down. Records deleted in other ways (a
user deleted with their tasks) leave the counters if they finished after the mark.

Records are counted by ``finished_at``, which every move to a final status sets
(transitions.task_finish); one without it would never be counted once there is a mark.

Besides the counts, two histograms are kept: how long succeeded records ran, and how long
records waited from their submission to their start (``started_at - created_at``), of
those that started once (``attempts`` 1; a claim sets ``started_at`` again, so a retried
record's start is its last attempt's). A record's wait is counted when it finishes: its
``started_at`` and ``attempts`` change no more then, so the histogram only goes up.
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Count, DurationField, ExpressionWrapper, F, Q, QuerySet, Sum
from django.utils import timezone

from operations.models import TaskTally, TaskTallyMark
from tasks_app.models import FINAL_STATUSES, TaskRecord, TaskStatus

# Seconds; task types run from well under a second to the 960 s limit of documents. The
# tally keeps a count per bound: a bound added later counts only what finished after the mark.
TASK_DURATION_BUCKETS = [0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 900, 1800, 3600]
# Seconds from submission to start: a fraction of a second when workers are free (relay,
# broker, claim), up to the hours of a long backlog or of fair use's waiting.
START_LATENCY_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600]
TALLY_GRACE = timedelta(minutes=5)
TALLY_STEP = timedelta(minutes=1)

DURATION = ExpressionWrapper(F("finished_at") - F("started_at"), output_field=DurationField())
TIMED = Q(status=TaskStatus.SUCCEEDED, started_at__isnull=False, finished_at__isnull=False)
START_LATENCY = ExpressionWrapper(F("started_at") - F("created_at"), output_field=DurationField())
STARTED_ONCE = Q(attempts=1, started_at__isnull=False)

# The fields of FinishedTotal and TaskTally that are added up: sums, and bucket counts.
SUMMED = (
    "count",
    "timed_count",
    "duration_seconds_sum",
    "started_count",
    "start_latency_seconds_sum",
)
BUCKETED = ("duration_buckets", "start_latency_buckets")


@dataclass
class FinishedTotal:
    """Records of one task type and final status ever finished; for succeeded ones also
    their durations: how many, their sum in seconds, and per bucket bound how many ran at
    most that long (cumulative); the same for the waits of those that started once."""

    task_type: str
    status: str
    count: int = 0
    timed_count: int = 0
    duration_seconds_sum: float = 0.0
    duration_buckets: dict[str, int] = field(default_factory=dict)
    started_count: int = 0
    start_latency_seconds_sum: float = 0.0
    start_latency_buckets: dict[str, int] = field(default_factory=dict)

    def add(self, counts: dict) -> None:
        _add(self, counts)


def _add(target: FinishedTotal | TaskTally, counts: dict) -> None:
    """Add ``counts`` (the SUMMED and BUCKETED names) to a FinishedTotal or a TaskTally."""
    for name in SUMMED:
        setattr(target, name, getattr(target, name) + counts[name])
    for name in BUCKETED:
        buckets = getattr(target, name)
        for bound, count in counts[name].items():
            buckets[bound] = buckets.get(bound, 0) + count


def finished_totals() -> list[FinishedTotal]:
    """Per task type and final status: the tally plus what finished since its mark.

    Read while holding the mark's row, so that no advance moves records from "since the
    mark" into the tally between the two reads (they would count twice, or not at all).
    """
    with transaction.atomic():
        mark = _mark_locked()
        totals: dict[tuple[str, str], FinishedTotal] = {}
        for tally in TaskTally.objects.all():
            total = totals.setdefault(
                (tally.task_type, tally.status), FinishedTotal(tally.task_type, tally.status)
            )
            total.add(_fields(tally))
        since = _finished()
        if mark.counted_until is not None:
            since = since.filter(finished_at__gte=mark.counted_until)
        for counts in _counts(since):
            key = (counts["task_type"], counts["status"])
            totals.setdefault(key, FinishedTotal(*key)).add(counts)
    return [totals[key] for key in sorted(totals)]


def totals_by_task_type(totals: list[FinishedTotal]) -> list[FinishedTotal]:
    """``totals`` of every final status added up per task type (their status "")."""
    by_type: dict[str, FinishedTotal] = {}
    for total in totals:
        summed = by_type.setdefault(total.task_type, FinishedTotal(total.task_type, ""))
        summed.add(_fields(total))
    return [by_type[task_type] for task_type in sorted(by_type)]


def tally_advance(*, until: datetime) -> datetime | None:
    """Count the records finished before ``until`` into the tally and put the mark there,
    unless it is there already. Returns the mark: what finished before it is counted.

    ``until`` at least TALLY_GRACE behind the clock: what finishes later, behind the mark,
    is never counted."""
    with transaction.atomic():
        mark = _mark_locked()
        if mark.counted_until is not None and mark.counted_until >= until:
            return mark.counted_until
        between = _finished().filter(finished_at__lt=until)
        if mark.counted_until is not None:
            between = between.filter(finished_at__gte=mark.counted_until)
        for counts in _counts(between):
            tally, _ = TaskTally.objects.get_or_create(
                task_type=counts["task_type"], status=counts["status"]
            )
            _add(tally, counts)
            tally.save()
        mark.counted_until = until
        mark.save(update_fields=["counted_until"])
        return until


def tally_advance_if_due(*, now: datetime | None = None) -> None:
    """Advance the tally to TALLY_GRACE ago if the mark is more than TALLY_STEP behind that."""
    until = (now or timezone.now()) - TALLY_GRACE
    counted_until = TaskTallyMark.objects.values_list("counted_until", flat=True).first()
    if counted_until is None or counted_until < until - TALLY_STEP:
        tally_advance(until=until)


def _fields(counted: FinishedTotal | TaskTally) -> dict:
    return {name: getattr(counted, name) for name in (*SUMMED, *BUCKETED)}


def _mark_locked() -> TaskTallyMark:
    TaskTallyMark.objects.get_or_create(pk=1)
    return TaskTallyMark.objects.select_for_update().get(pk=1)


def _finished() -> QuerySet[TaskRecord]:
    # Served by the (status, finished_at) index: one range per final status.
    return TaskRecord.objects.filter(status__in=FINAL_STATUSES)


def _counts(records: QuerySet[TaskRecord]) -> list[dict]:
    """Per task type and status: count, the durations of the succeeded ones and the waits
    of those that started once. One query."""
    durations = _bucket_counts("duration", TASK_DURATION_BUCKETS, TIMED)
    waits = _bucket_counts("start_latency", START_LATENCY_BUCKETS, STARTED_ONCE)
    rows = (
        records.annotate(duration=DURATION, start_latency=START_LATENCY)
        .values("task_type", "status")
        .annotate(
            count=Count("id"),
            timed_count=Count("id", filter=TIMED),
            duration_sum=Sum("duration", filter=TIMED),
            started_count=Count("id", filter=STARTED_ONCE),
            start_latency_sum=Sum("start_latency", filter=STARTED_ONCE),
            **durations,
            **waits,
        )
        .order_by()
    )
    return [
        {
            "task_type": row["task_type"],
            "status": row["status"],
            "count": row["count"],
            "timed_count": row["timed_count"],
            "duration_seconds_sum": _seconds(row["duration_sum"]),
            "duration_buckets": _buckets(row, "duration", TASK_DURATION_BUCKETS),
            "started_count": row["started_count"],
            "start_latency_seconds_sum": _seconds(row["start_latency_sum"]),
            "start_latency_buckets": _buckets(row, "start_latency", START_LATENCY_BUCKETS),
        }
        for row in rows
    ]


def _bucket_counts(name: str, bounds: list[float], counted: Q) -> dict[str, Count]:
    """An aggregate per bound: how many of the ``counted`` records had ``name`` at most that."""
    return {
        f"{name}_le_{index}": Count(
            "id", filter=counted & Q(**{f"{name}__lte": timedelta(seconds=bound)})
        )
        for index, bound in enumerate(bounds)
    }


def _buckets(row: dict, name: str, bounds: list[float]) -> dict[str, int]:
    return {str(bound): row[f"{name}_le_{index}"] for index, bound in enumerate(bounds)}


def _seconds(total: timedelta | None) -> float:
    return total.total_seconds() if total is not None else 0.0
