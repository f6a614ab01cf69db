"""The periodic tasks beat runs, and the service that installs them in the database.

django-celery-beat's DatabaseScheduler runs whatever PeriodicTask rows exist; staff edit
them in the admin. ``schedules_install`` (the ``install_schedules`` command, run by
bin/serve after migrate) creates the missing rows and leaves existing ones alone, so an
admin's edit survives deploys and restarts. Nothing is in CELERY_BEAT_SCHEDULE: beat would
write that over the rows at every start.
"""

import logging
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

logger = logging.getLogger(__name__)

HOUR = timedelta(hours=1)
# Celery's own result cleanup, which beat adds by itself at every start (see below).
CELERY_BACKEND_CLEANUP = "celery.backend_cleanup"


@dataclass(frozen=True)
class Schedule:
    """One periodic task: ``every`` (an interval) or ``crontab`` (minute, hour), not both."""

    name: str
    task: str
    description: str
    expires: timedelta  # a run not started by then is dropped: the next one is due anyway
    every: timedelta | None = None
    crontab: dict[str, str] = field(default_factory=dict)
    enabled: bool = True


def schedules_defined() -> list[Schedule]:
    """The schedules this service needs, as installed by ``schedules_install``."""
    reconcile = timedelta(seconds=settings.TASKS_RECONCILE_SECONDS)
    return [
        Schedule(
            name="tasks-reconcile",
            task="tasks_app.reconcile",
            every=reconcile,
            expires=reconcile,
            description="Stuck tasks: gives the tasks of dead workers back to the queue and "
            "sends again the messages the broker lost (job stuck_tasks).",
        ),
        Schedule(
            name="operations-health-snapshot",
            task="operations.record_health_snapshot",
            every=timedelta(seconds=60),
            expires=timedelta(seconds=60),
            description="Records the service's health for its history; tells staff when it "
            "turns critical; deletes snapshots past OPS_HEALTH_SNAPSHOT_RETENTION_DAYS.",
        ),
        Schedule(
            name="operations-cleanup-results",
            task="operations.cleanup_results",
            every=HOUR,
            expires=HOUR,
            description="Deletes Celery result rows older than CELERY_RESULT_EXPIRES, in "
            "batches (job results_cleanup).",
        ),
        Schedule(
            name="operations-cleanup-orphan-files",
            task="operations.cleanup_orphan_files",
            every=HOUR,
            expires=HOUR,
            description="Removes abandoned scratch folders of document processing and stored "
            "files whose document is gone (job orphan_files_cleanup).",
        ),
        Schedule(
            name="tasks-prune-dead-letters",
            task="tasks_app.prune_dead_letters",
            # Before the task-record retention, so that tasks whose dead letter goes
            # tonight can go tonight too.
            crontab={"minute": "15", "hour": "3"},
            expires=timedelta(hours=12),
            description="Deletes dead letters older than TASKS_DEAD_LETTER_RETENTION_DAYS "
            "(job dead_letters_prune).",
        ),
        Schedule(
            name="operations-prune-task-records",
            task="operations.prune_task_records",
            crontab={"minute": "30", "hour": "3"},
            expires=timedelta(hours=12),
            description="Deletes finished task records older than OPS_TASK_RETENTION_DAYS, in "
            "batches; keeps unfinished ones and those with an open dead letter "
            "(job task_records_prune).",
        ),
        # Beat creates this row at every start (result_expires is set) but leaves its
        # "enabled" alone: installed disabled, it stays disabled. Its one DELETE of all
        # expired results is what operations-cleanup-results does hourly, in batches.
        Schedule(
            name=CELERY_BACKEND_CLEANUP,
            task=CELERY_BACKEND_CLEANUP,
            crontab={"minute": "0", "hour": "4"},
            expires=timedelta(hours=12),
            enabled=False,
            description="Celery's built-in result cleanup, disabled: "
            "operations-cleanup-results replaces it.",
        ),
    ]


@transaction.atomic
def schedules_install(*, reset: bool = False) -> dict[str, int]:
    """Create the missing periodic tasks; with ``reset``, also restore edited ones.

    Without ``reset`` an existing row is kept as it is, whatever an admin changed.
    Returns how many were created, kept and updated (reset to their definition).
    """
    counts = {"created": 0, "kept": 0, "updated": 0}
    for schedule in schedules_defined():
        wanted = _periodic_task_fields(schedule)
        existing = PeriodicTask.objects.filter(name=schedule.name).first()
        if existing is None:
            PeriodicTask.objects.create(name=schedule.name, **wanted)
            action = "created"
        elif not reset or all(getattr(existing, key) == value for key, value in wanted.items()):
            action = "kept"
        else:
            for key, value in wanted.items():
                setattr(existing, key, value)
            existing.save()
            action = "updated"
        counts[action] += 1
        level = logging.DEBUG if action == "kept" else logging.INFO
        logger.log(level, "schedule %s name=%s task=%s", action, schedule.name, schedule.task)
    return counts


def schedules_installed() -> QuerySet[PeriodicTask]:
    """The periodic tasks of ``schedules_defined`` as they are now in the database."""
    names = [schedule.name for schedule in schedules_defined()]
    return PeriodicTask.objects.filter(name__in=names).select_related("interval", "crontab")


def _periodic_task_fields(schedule: Schedule) -> dict:
    # Every field a reset restores; the others (last run, run count) are beat's.
    return {
        "task": schedule.task,
        "interval": _interval(schedule.every) if schedule.every else None,
        "crontab": _crontab(**schedule.crontab) if schedule.crontab else None,
        "solar": None,
        "clocked": None,
        "args": "[]",
        "kwargs": "{}",
        "queue": None,
        "exchange": None,
        "routing_key": None,
        "priority": None,
        "headers": "{}",
        "expires": None,  # a date after which beat disables the task: not wanted
        "expire_seconds": max(1, round(schedule.expires.total_seconds())),
        "one_off": False,
        "start_time": None,
        "enabled": schedule.enabled,
        "description": schedule.description,
    }


def _interval(every: timedelta) -> IntervalSchedule:
    seconds = max(1, round(every.total_seconds()))
    period, count = IntervalSchedule.SECONDS, seconds
    for unit, unit_seconds in ((IntervalSchedule.HOURS, 3600), (IntervalSchedule.MINUTES, 60)):
        if seconds % unit_seconds == 0:
            period, count = unit, seconds // unit_seconds
            break
    # Not get_or_create: nothing keeps an admin from adding a duplicate row.
    interval = IntervalSchedule.objects.filter(every=count, period=period).order_by("pk").first()
    return interval or IntervalSchedule.objects.create(every=count, period=period)


def _crontab(*, minute: str, hour: str) -> CrontabSchedule:
    spec = {
        "minute": minute,
        "hour": hour,
        "day_of_week": "*",
        "day_of_month": "*",
        "month_of_year": "*",
        "timezone": settings.CELERY_TIMEZONE,
    }
    crontab = CrontabSchedule.objects.filter(**spec).order_by("pk").first()
    return crontab or CrontabSchedule.objects.create(**spec)
