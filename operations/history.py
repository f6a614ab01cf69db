"""The service's recent history, from the health snapshots beat records each minute.

Each snapshot keeps the figures of the minute before it (``figures_since_last``): tasks
finished and failed, the p95 duration of each task type, and each queue's depth. The staff
page charts the last 24 hours of them (``day_series``), in buckets, so that a chart has a
few hundred points however often snapshots are taken.
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db.models import Count, Q

from operations.broker_census import BrokerFacts
from operations.metrics import FAILURE_STATUSES, task_durations_by_type
from operations.models import HealthSnapshot
from tasks_app.models import FINAL_STATUSES, TaskRecord, TaskStatus

# The longest span one snapshot's figures cover: after beat was down for a day, the first
# snapshot counts the last hour, not the whole gap.
MAX_SPAN = timedelta(hours=1)
DEFAULT_SPAN = timedelta(minutes=1)


def figures_since_last(*, now: datetime, facts: BrokerFacts) -> dict:
    """What happened since the last snapshot (at most MAX_SPAN back), for the next one."""
    last = HealthSnapshot.objects.filter(created_at__lt=now).values_list("created_at", flat=True)
    last_at = last.order_by("-created_at").first()
    since = max(now - MAX_SPAN, last_at) if last_at else now - DEFAULT_SPAN
    # The (status, finished_at) index, one range per final status.
    finished = TaskRecord.objects.filter(
        status__in=FINAL_STATUSES, finished_at__gt=since, finished_at__lte=now
    )
    counts = finished.aggregate(
        finished=Count("id"), failed=Count("id", filter=Q(status__in=FAILURE_STATUSES))
    )
    durations = task_durations_by_type(records=finished.filter(status=TaskStatus.SUCCEEDED))
    return {
        "seconds": round((now - since).total_seconds(), 3),
        "finished": counts["finished"],
        "failed": counts["failed"],
        "p95_seconds": {
            task_type: figures["p95"]
            for task_type, figures in sorted(durations.items())
            if figures["p95"] is not None
        },
        "queue_depths": dict(facts.queue_sizes),
    }


@dataclass
class Series:
    """One line of a chart: a name and a value (or None: no data) per bucket."""

    name: str
    values: list[float | None] = field(default_factory=list)


@dataclass
class Chart:
    title: str
    unit: str
    series: list[Series]


@dataclass
class DaySeries:
    """The last day in buckets: their start times, and the four charts' lines."""

    starts: list[datetime]
    throughput: Chart
    failure_rate: Chart
    p95_duration: Chart
    queue_depth: Chart

    @property
    def charts(self) -> list[Chart]:
        return [self.throughput, self.failure_rate, self.p95_duration, self.queue_depth]


def day_series(*, now: datetime, buckets: int = 144, hours: int = 24) -> DaySeries:
    """The last ``hours`` of snapshot figures, in ``buckets`` equal buckets, oldest first.

    Throughput is tasks finished per minute, the failure rate a percentage of those, the
    p95 duration the worst of a type's minutes in the bucket, a queue's depth its largest.
    A bucket without snapshots (beat was down) has no value: the line has a gap there.
    """
    start = now - timedelta(hours=hours)
    width = (now - start) / buckets
    finished = [0] * buckets
    failed = [0] * buckets
    seconds = [0.0] * buckets
    p95: dict[str, list[float | None]] = {}
    depths: dict[str, list[float | None]] = {}
    rows = (
        HealthSnapshot.objects.filter(created_at__gt=start, created_at__lte=now)
        .order_by("created_at")
        .values_list("created_at", "figures")
    )
    for created_at, figures in rows.iterator(chunk_size=2000):
        if not figures:
            continue
        index = min(buckets - 1, int((created_at - start) / width))
        finished[index] += figures.get("finished", 0)
        failed[index] += figures.get("failed", 0)
        seconds[index] += figures.get("seconds", 0.0)
        for task_type, value in figures.get("p95_seconds", {}).items():
            line = p95.setdefault(task_type, [None] * buckets)
            line[index] = max(value, line[index] or 0.0)
        for queue, depth in figures.get("queue_depths", {}).items():
            line = depths.setdefault(queue, [None] * buckets)
            if depth is not None:
                line[index] = max(depth, line[index] or 0)
    per_minute = [
        round(done * 60 / span, 2) if span else None
        for done, span in zip(finished, seconds, strict=True)
    ]
    failure_rate = [
        round(100 * bad / done, 1) if done else (0.0 if span else None)
        for bad, done, span in zip(failed, finished, seconds, strict=True)
    ]
    return DaySeries(
        starts=[start + width * index for index in range(buckets)],
        throughput=Chart("Throughput", "tasks/min", [Series("finished", per_minute)]),
        failure_rate=Chart("Failure rate", "%", [Series("failed or timed out", failure_rate)]),
        p95_duration=Chart(
            "p95 duration", "s", [Series(name, line) for name, line in sorted(p95.items())]
        ),
        queue_depth=Chart(
            "Queue depth", "messages", [Series(name, line) for name, line in sorted(depths.items())]
        ),
    )
