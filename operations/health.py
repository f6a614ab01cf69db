"""How healthy the service is: readiness for load balancers, and an evaluation for staff.

- ``readiness_checks``: can this web process serve requests? Only the database is asked:
  workers that are down or a beat that has not ticked yet are the system's health, not a
  reason to take every web server out of rotation (the outbox accepts work meanwhile).
- ``health_evaluate``: how well is it doing? Workers, beat, failure rate, tasks near their
  time limit, queue backlogs, open dead letters. Each check is healthy, degraded, critical
  or unknown, and names the numbers behind its verdict; the worst one is the overall.

The broker and the workers are asked with short timeouts (a dead broker costs about a
second, not minutes), and at most once per OPS_WORKER_CENSUS_SECONDS for all processes
(``broker_census``, shared through Django's cache); the rest are aggregate queries on the
database.
"""

import logging
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

from celery import current_app
from django.conf import settings
from django.core.cache import cache
from django.db import DatabaseError, connection
from django.db.models import Count, Max, Min, Q
from django.utils import timezone
from django_celery_beat.models import PeriodicTask
from kombu.exceptions import OperationalError as BrokerError

from operations.models import HealthStatus
from tasks_app.models import FINAL_STATUSES, DeadLetter, PoolStall, TaskRecord, TaskStatus
from tasks_app.recovery import broker_queue_size
from tasks_app.task_types import all_task_types

logger = logging.getLogger(__name__)

BROKER_TIMEOUT = 1.0
# Below this many finished tasks in the window one failure would swing the rate wildly.
TIME_LIMIT_WARNING_FRACTION = 0.8
# Worst last: "unknown" outranks degraded (we cannot vouch for the service), but a
# problem we can see for certain (critical) is reported as such.
SEVERITY = [
    HealthStatus.HEALTHY,
    HealthStatus.DEGRADED,
    HealthStatus.UNKNOWN,
    HealthStatus.CRITICAL,
]


# --- Facts from outside the database: the broker and the workers --------------------------


def _broker_connection(*, timeout: float):
    # Celery's broker_connection_timeout (4 s) wins over a connect_timeout argument, and
    # Redis ignores both: its socket options bound a connect to an unreachable host, and a
    # read from a broker that accepts connections but never answers (that one hangs forever).
    return current_app.connection_for_read(
        transport_options={"socket_connect_timeout": timeout, "socket_timeout": timeout}
    )


def broker_connection_error() -> str | None:
    """None when the broker accepts a connection, else why it does not."""
    try:
        with _broker_connection(timeout=BROKER_TIMEOUT) as broker:
            # One attempt, no waiting between: the default policy retries for minutes.
            broker.ensure_connection(
                max_retries=1, interval_start=0, interval_step=0, timeout=BROKER_TIMEOUT
            )
    except (BrokerError, OSError) as error:
        return str(error) or type(error).__name__
    return None


def workers_by_queue(*, queues: list[str]) -> dict[str, list[str]] | None:
    """The workers that answered a ping, per queue in ``queues``; None if they could not be asked.

    ``active_queues`` is the ping: a worker that answers it is alive and says what it consumes.
    """
    timeout = settings.OPS_WORKER_PING_TIMEOUT
    try:
        # The socket waits longer than the ping, or it would cut off the replies.
        with _broker_connection(timeout=timeout + BROKER_TIMEOUT) as broker:
            inspect = current_app.control.inspect(timeout=timeout, connection=broker)
            replies = inspect.active_queues() or {}  # None when nobody answered
    except (BrokerError, OSError) as error:
        logger.warning("workers not asked, broker unreachable: %s", error)
        return None
    answered: dict[str, list[str]] = {queue: [] for queue in queues}
    for worker, worker_queues in replies.items():
        for queue in worker_queues or []:
            if queue.get("name") in answered:
                answered[queue["name"]].append(worker)
    return {queue: sorted(workers) for queue, workers in answered.items()}


@dataclass(frozen=True)
class BrokerFacts:
    """What the broker told us; None where it could not be asked."""

    error: str | None
    workers: dict[str, list[str]] | None
    queue_sizes: dict[str, int | None]


def broker_facts_gather(*, queues: list[str]) -> BrokerFacts:
    error = broker_connection_error()
    if error is not None:
        return BrokerFacts(error=error, workers=None, queue_sizes=dict.fromkeys(queues))
    return BrokerFacts(
        error=None,
        workers=workers_by_queue(queues=queues),
        queue_sizes={queue: broker_queue_size(queue) for queue in queues},
    )


def broker_census_cache_key(*, queues: list[str]) -> str:
    return "operations:broker-census:" + ",".join(queues)


def broker_census(*, queues: list[str]) -> BrokerFacts:
    """The broker facts, gathered at most once per OPS_WORKER_CENSUS_SECONDS across processes.

    Asking the workers waits out OPS_WORKER_PING_TIMEOUT: every staff page, scrape and
    snapshot doing it would queue requests behind one another. The process that finds no
    census taken within the interval takes one and shares it through the cache; the
    others read that one. With an interval of 0, or a cache that fails, it is asked live.
    """
    interval = settings.OPS_WORKER_CENSUS_SECONDS
    if interval <= 0:
        return broker_facts_gather(queues=queues)
    key = broker_census_cache_key(queues=queues)
    try:
        # add() is atomic in every shared cache: one process per interval wins the turn.
        our_turn = cache.add(key + ":taken", True, timeout=interval)
        shared = None if our_turn else cache.get(key)
    # Cache backends have no common error class (redis, database, memcached errors).
    except Exception as error:
        logger.warning("broker census not shared, cache unavailable: %s", error)
        return broker_facts_gather(queues=queues)
    if shared is not None:
        return shared
    # Our turn, or another process's census is still under way and none is stored yet.
    facts = broker_facts_gather(queues=queues)
    try:
        # Kept past the interval, so that readers have one while the next is taken.
        cache.set(key, facts, timeout=interval * 10)
    except Exception as error:
        logger.warning("broker census not shared, cache unavailable: %s", error)
    return facts


# --- Readiness ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReadinessCheck:
    name: str
    ok: bool
    detail: str


def readiness_checks() -> list[ReadinessCheck]:
    """Whether this web process can serve: the database answers. Nothing else is asked.

    No broker, no worker ping: a probe that a load balancer sends every few seconds to
    every web server must cost one query, and must not fail them all when workers are
    down (their absence is critical in ``health_evaluate``).
    """
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError as error:
        # The reason goes to the log: this answer is for anonymous callers.
        logger.warning("not ready, the database did not answer: %s", error)
        detail = f"the database did not answer ({type(error).__name__})"
        return [ReadinessCheck("database", False, detail)]
    return [ReadinessCheck("database", True, "query answered")]


# --- Evaluation -----------------------------------------------------------------------------


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
    enabled = PeriodicTask.objects.filter(enabled=True)
    # date_changed: when the schedules were installed (or last edited), the start of the
    # wait for a beat that never sent anything.
    seen = enabled.aggregate(last_sent=Max("last_run_at"), installed=Min("date_changed"))
    last_sent, installed = seen["last_sent"], seen["installed"]
    numbers = {
        "last_sent_at": last_sent.isoformat() if last_sent else None,
        "stale_after_seconds": limit,
    }
    if installed is None:
        message = "no periodic task is enabled: maintenance does not run (see manage.py migrate)"
        return CheckOutcome("beat", HealthStatus.CRITICAL, message, numbers)
    if last_sent is None:
        waited = (now - installed).total_seconds()
        message = f"beat has not sent any periodic task in the {waited:.0f} s since they were "
        message += f"installed (stale after {limit} s)"
        # A fresh deployment: beat sends its first ones within a minute.
        status = HealthStatus.HEALTHY if waited <= limit else HealthStatus.CRITICAL
        return CheckOutcome("beat", status, message, numbers)
    age = (now - last_sent).total_seconds()
    numbers["age_seconds"] = round(age)
    message = f"last periodic task sent {age:.0f} s ago (stale after {limit} s)"
    status = HealthStatus.HEALTHY if age <= limit else HealthStatus.CRITICAL
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
    open_count = DeadLetter.objects.filter(resolution=DeadLetter.Resolution.OPEN).count()
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
