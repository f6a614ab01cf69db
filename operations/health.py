"""How well the service is doing, for staff: the health evaluation with its reasons.

``health_evaluate`` asks workers, beat, failure rate, tasks near their time limit, queue
backlogs, open dead letters, wedged pool processes and the relay. Each check is healthy, degraded,
critical or unknown, and names the numbers behind its verdict; the worst one is the
overall. /api/v1/tasks/health shows it, beat's snapshots (alerts.py) store it.

The workers and the queues come from the broker census (broker_census.py, shared between
processes, with short timeouts); the rest are aggregate queries on the database. Whether a
web process can serve at all is readiness.py's question, not this one.
"""

from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count, Q
from django.utils import timezone

from operations.broker_census import BrokerFacts, broker_census
from operations.metrics import tasks_outbox_backlog
from operations.models import HealthStatus
from operations.selectors import beat_heartbeat, dead_letters_open_count
from tasks_app.models import FINAL_STATUSES, PoolStall, TaskRecord, TaskStatus
from tasks_app.task_types import all_task_types

TIME_LIMIT_WARNING_FRACTION = 0.8
# Worst last: "unknown" outranks degraded (we cannot vouch for the service), but a
# problem we can see for certain (critical) is reported as such.
SEVERITY = [
    HealthStatus.HEALTHY,
    HealthStatus.DEGRADED,
    HealthStatus.UNKNOWN,
    HealthStatus.CRITICAL,
]


@dataclass(frozen=True)
class CheckOutcome:
    check: str
    status: str
    message: str
    numbers: dict = field(default_factory=dict)


@dataclass(frozen=True)
class HealthReport:
    status: str
    checks: list[CheckOutcome]
    checked_at: datetime

    @property
    def reasons(self) -> list[CheckOutcome]:
        """The checks behind a status other than healthy."""
        return [check for check in self.checks if check.status != HealthStatus.HEALTHY]

    def reasons_as_json(self) -> list[dict]:
        return [asdict(reason) for reason in self.reasons]


def health_evaluate(
    *, now: datetime | None = None, facts: BrokerFacts | None = None
) -> HealthReport:
    """Every check, and the worst of them as the overall status. ``facts`` default to live ones."""
    now = now or timezone.now()
    if facts is None:
        facts = broker_census(queues=list(settings.TASKS_QUEUES))
    checks = [
        _workers_check(facts=facts),
        _beat_check(now=now),
        *_backlog_checks(facts=facts),
        _failure_rate_check(now=now),
        _time_limit_check(now=now),
        _dead_letters_check(),
        _pool_stalls_check(now=now),
        _relay_check(now=now),
    ]
    status = max((check.status for check in checks), key=SEVERITY.index)
    return HealthReport(status=status, checks=checks, checked_at=now)


def _workers_check(*, facts: BrokerFacts) -> CheckOutcome:
    if facts.workers is None:
        reason = f"broker unreachable ({facts.error})" if facts.error else "the ping failed"
        return CheckOutcome(
            "workers", HealthStatus.UNKNOWN, f"workers could not be asked: {reason}"
        )
    per_queue = {queue: len(names) for queue, names in facts.workers.items()}
    numbers = {
        "workers": len({name for names in facts.workers.values() for name in names}),
        "by_queue": per_queue,
    }
    missing = [queue for queue, count in per_queue.items() if not count]
    if numbers["workers"] == 0:
        message = f"no workers: none answered a ping on {', '.join(per_queue)}"
        return CheckOutcome("workers", HealthStatus.CRITICAL, message, numbers)
    if missing:
        # Tasks of these queues wait forever: critical for the people who submit them.
        message = f"no worker on queue {', '.join(missing)} ({numbers['workers']} on the others)"
        return CheckOutcome("workers", HealthStatus.CRITICAL, message, numbers)
    return CheckOutcome("workers", HealthStatus.HEALTHY, f"{numbers['workers']} workers", numbers)


def _beat_check(*, now: datetime) -> CheckOutcome:
    """Beat is alive while it sent a periodic task within OPS_BEAT_STALE_SECONDS."""
    limit = settings.OPS_BEAT_STALE_SECONDS
    heartbeat = beat_heartbeat()
    last_sent = heartbeat.last_sent_at
    numbers = {
        "last_sent_at": last_sent.isoformat() if last_sent else None,
        "stale_after_seconds": limit,
    }
    if heartbeat.since is None:
        message = "no periodic task is enabled: maintenance does not run (see manage.py migrate)"
        return CheckOutcome("beat", HealthStatus.CRITICAL, message, numbers)
    age = (now - heartbeat.since).total_seconds()
    status = HealthStatus.HEALTHY if age <= limit else HealthStatus.CRITICAL
    if last_sent is None:
        # A fresh deployment: the wait counts from the installation of the periodic tasks.
        message = f"beat has not sent any periodic task in the {age:.0f} s since they were "
        message += f"installed (stale after {limit} s)"
        return CheckOutcome("beat", status, message, numbers)
    numbers["age_seconds"] = round(age)
    message = f"last periodic task sent {age:.0f} s ago (stale after {limit} s)"
    return CheckOutcome("beat", status, message, numbers)


def _backlog_checks(*, facts: BrokerFacts) -> list[CheckOutcome]:
    warning = settings.OPS_QUEUE_BACKLOG_WARNING
    outcomes = []
    for queue, size in facts.queue_sizes.items():
        numbers = {"queue": queue, "waiting": size, "warning_above": warning}
        if size is None:
            status, message = HealthStatus.UNKNOWN, f"queue {queue}: size unknown"
        elif size > warning:
            status = HealthStatus.DEGRADED
            message = f"queue {queue}: {size} messages waiting (warning above {warning})"
        else:
            status, message = HealthStatus.HEALTHY, f"queue {queue}: {size} messages waiting"
        outcomes.append(CheckOutcome("queue_backlog", status, message, numbers))
    return outcomes


def _failure_rate_check(*, now: datetime) -> CheckOutcome:
    window = settings.OPS_HEALTH_WINDOW_SECONDS
    counts = TaskRecord.objects.filter(
        status__in=FINAL_STATUSES, finished_at__gte=now - timedelta(seconds=window)
    ).aggregate(
        finished=Count("pk"),
        failed=Count("pk", filter=Q(status=TaskStatus.FAILED)),
        timed_out=Count("pk", filter=Q(status=TaskStatus.TIMED_OUT)),
    )
    bad, finished = counts["failed"] + counts["timed_out"], counts["finished"]
    rate = bad / finished if finished else None
    warning, critical = settings.OPS_FAILURE_RATE_WARNING, settings.OPS_FAILURE_RATE_CRITICAL
    min_samples = settings.OPS_FAILURE_RATE_MIN_SAMPLES
    numbers = {
        **counts,
        "rate": round(rate, 4) if rate is not None else None,
        "window_seconds": window,
        "warning_above": warning,
        "critical_above": critical,
        "min_samples": min_samples,
    }
    summary = f"{bad} of {finished} tasks finished in the last {window} s failed or timed out"
    if finished < min_samples:
        message = f"{summary}: too few to judge (fewer than {min_samples})"
        return CheckOutcome("failure_rate", HealthStatus.HEALTHY, message, numbers)
    message = f"failure rate {rate:.1%}: {summary} (warning above {warning:.0%}, "
    message += f"critical above {critical:.0%})"
    if rate > critical:
        return CheckOutcome("failure_rate", HealthStatus.CRITICAL, message, numbers)
    if rate > warning:
        return CheckOutcome("failure_rate", HealthStatus.DEGRADED, message, numbers)
    return CheckOutcome("failure_rate", HealthStatus.HEALTHY, message, numbers)


def _time_limits() -> dict[str, int]:
    # The soft limit first: it is where a task is stopped and marked timed_out (execution.py).
    limits = {spec.name: spec.soft_time_limit or spec.time_limit for spec in all_task_types()}
    return {name: limit for name, limit in limits.items() if limit}


def _time_limit_check(*, now: datetime) -> CheckOutcome:
    limits = _time_limits()
    near_limit = Q()
    for name, limit in limits.items():
        started_before = now - timedelta(seconds=TIME_LIMIT_WARNING_FRACTION * limit)
        near_limit |= Q(task_type=name, started_at__lt=started_before)
    rows = []
    if limits:  # an empty Q() would match every running task
        rows = (
            TaskRecord.objects.running()
            .filter(near_limit)
            .values("task_type")
            .annotate(count=Count("pk"))
            .order_by("task_type")
        )
    by_type = {row["task_type"]: row["count"] for row in rows}
    total = sum(by_type.values())
    numbers = {
        "running_near_limit": total,
        "by_task_type": by_type,
        "limit_seconds": {name: limits[name] for name in by_type},
        "fraction": TIME_LIMIT_WARNING_FRACTION,
    }
    if not total:
        return CheckOutcome("time_limits", HealthStatus.HEALTHY, "no task near its limit", numbers)
    listed = ", ".join(f"{name}: {count}" for name, count in by_type.items())
    message = (
        f"{total} running tasks past {TIME_LIMIT_WARNING_FRACTION:.0%} of their time limit "
        f"({listed})"
    )
    return CheckOutcome("time_limits", HealthStatus.DEGRADED, message, numbers)


def _dead_letters_check() -> CheckOutcome:
    open_count = dead_letters_open_count()
    warning = settings.OPS_DEAD_LETTERS_WARNING
    numbers = {"open": open_count, "warning_above": warning}
    message = f"{open_count} open dead letters"
    if open_count > warning:
        message += f" (warning above {warning})"
        return CheckOutcome("dead_letters", HealthStatus.DEGRADED, message, numbers)
    return CheckOutcome("dead_letters", HealthStatus.HEALTHY, message, numbers)


def _pool_stalls_check(*, now: datetime) -> CheckOutcome:
    """Pool processes that took a task and never started it (replaced by the watchdog)."""
    window = settings.OPS_HEALTH_WINDOW_SECONDS
    recent = PoolStall.objects.filter(detected_at__gte=now - timedelta(seconds=window))
    by_worker = dict(
        recent.values("worker").annotate(count=Count("pk")).values_list("worker", "count")
    )
    count = sum(by_worker.values())
    numbers = {"stalls": count, "by_worker": by_worker, "window_seconds": window}
    message = f"{count} wedged pool processes replaced in the last {window} s"
    if count:
        return CheckOutcome("pool_stalls", HealthStatus.DEGRADED, message, numbers)
    return CheckOutcome("pool_stalls", HealthStatus.HEALTHY, message, numbers)


def _relay_check(*, now: datetime) -> CheckOutcome:
    """Submitted tasks wait in the outbox until the relay publishes them: a relay that is
    down or behind shows as an old outbox (its partial index keeps this read small)."""
    limit = settings.OPS_RELAY_LAG_SECONDS
    outbox = tasks_outbox_backlog()
    age = (now - outbox.oldest_created_at).total_seconds() if outbox.oldest_created_at else 0.0
    numbers = {
        "waiting": outbox.count,
        "oldest_seconds": round(age),
        "lag_after_seconds": limit,
    }
    message = f"{outbox.count} submitted tasks wait to be published"
    if age <= limit:
        return CheckOutcome("relay", HealthStatus.HEALTHY, message, numbers)
    message += (
        f", the oldest for {age:.0f} s: is the relay running (manage.py tasks_relay)? "
        "Reconciliation publishes them meanwhile, at each of its runs"
    )
    return CheckOutcome("relay", HealthStatus.DEGRADED, message, numbers)
