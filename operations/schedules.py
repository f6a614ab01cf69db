"""The periodic tasks beat runs, and the service that installs them in the database.

django-celery-beat's DatabaseScheduler runs whatever PeriodicTask rows exist; staff edit
them in the admin. ``schedules_install`` creates the missing rows and leaves existing ones
alone, so an admin's edit survives deploys and restarts. ``manage.py migrate`` runs it
(migration operations/0002), so a deployment that migrates and starts beat has them; the
``install_schedules`` command runs it too, and with ``--reset`` restores edited rows.
Nothing is in CELERY_BEAT_SCHEDULE: beat would write that over the rows at every start.

A schedule added to ``schedules_defined`` later needs a migration that runs
``schedules_install`` again (like 0002), so that ``migrate`` installs it everywhere. A task
renamed needs one that renames it in the rows (like 0003), and its old name registered for
a release (operations/tasks.py): a beat that has not reloaded yet still sends it.
"""

import logging
from dataclasses import dataclass, field
from datetime import timedelta

from django.apps import apps as project_apps
from django.apps.registry import Apps
from django.conf import settings
from django.db import transaction
from django.db.models import Model, QuerySet
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask

logger = logging.getLogger(__name__)

HOUR = timedelta(hours=1)
# The crontab schedules run once a night: a run not started within half a day waits for the
# next night.
DAILY_EXPIRES = timedelta(hours=12)
# Celery's own result cleanup, which beat adds by itself at every start (see below).
CELERY_BACKEND_CLEANUP = "celery.backend_cleanup"


@dataclass(frozen=True)
class Schedule:
    """One periodic task: ``every`` (an interval) or ``crontab`` (minute, hour), not both."""

    name: str
    task: str
    description: str
    every: timedelta | None = None
    crontab: dict[str, str] = field(default_factory=dict)
    enabled: bool = True

    @property
    def expires(self) -> timedelta:
        """A run not started by then is dropped: the next one is due anyway."""
        return self.every or DAILY_EXPIRES


def schedules_defined() -> list[Schedule]:
    """The schedules this service needs, as installed by ``schedules_install``."""
    return [
        Schedule(
            name="tasks-reconcile",
            task="operations.reconcile_tasks",
            every=timedelta(seconds=settings.TASKS_RECONCILE_SECONDS),
            description="Reconciliation: gives the tasks of dead workers back to the queue, "
            "sends again the messages the broker lost, admits waiting tasks whose owner has a "
            "free slot (job tasks_reconcile).",
        ),
        Schedule(
            name="operations-health-snapshot",
            task="operations.record_health_snapshot",
            every=timedelta(seconds=60),
            description="Records the service's health for its history; tells staff when it "
            "turns critical; deletes snapshots past OPS_HEALTH_SNAPSHOT_RETENTION_DAYS.",
        ),
        Schedule(
            name="operations-cleanup-results",
            task="operations.cleanup_results",
            every=HOUR,
            description="Deletes Celery result rows older than CELERY_RESULT_EXPIRES, in "
            "batches (job results_cleanup).",
        ),
        Schedule(
            name="operations-cleanup-orphan-files",
            task="operations.cleanup_orphan_files",
            every=HOUR,
            description="Removes abandoned scratch folders of document processing and stored "
            "files whose document is gone (job orphan_files_cleanup).",
        ),
        Schedule(
            name="tasks-prune-dead-letters",
            task="operations.prune_dead_letters",
            # Before the task-record retention, so that tasks whose dead letter goes
            # tonight can go tonight too.
            crontab={"minute": "15", "hour": "3"},
            description="Deletes dead letters older than TASKS_DEAD_LETTER_RETENTION_DAYS, in "
            "batches (job dead_letters_prune).",
        ),
        Schedule(
            name="operations-prune-task-records",
            task="operations.prune_task_records",
            crontab={"minute": "30", "hour": "3"},
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
            enabled=False,
            description="Celery's built-in result cleanup, disabled: "
            "operations-cleanup-results replaces it.",
        ),
    ]


@dataclass(frozen=True)
class _BeatModels:
    """django-celery-beat's models, from the project or from a migration's historical state."""

    periodic_task: type[Model]
    interval: type[Model]
    crontab: type[Model]
    changes: type[Model]

    @classmethod
    def of(cls, apps: Apps) -> "_BeatModels":
        def model(name: str) -> type[Model]:
            return apps.get_model("django_celery_beat", name)

        return cls(
            model("PeriodicTask"),
            model("IntervalSchedule"),
            model("CrontabSchedule"),
            model("PeriodicTasks"),
        )


@transaction.atomic
def schedules_install(*, reset: bool = False, apps: Apps = project_apps) -> dict[str, int]:
    """Create the missing periodic tasks; with ``reset``, also restore edited ones.

    Without ``reset`` an existing row is kept as it is, whatever an admin changed (a deleted
    row is created again: disable a schedule to stop it). ``apps`` is the registry to take
    the models from: a data migration passes its historical one.
    Returns how many were created, kept and updated (reset to their definition).
    """
    models = _BeatModels.of(apps)
    counts = {"created": 0, "kept": 0, "updated": 0}
    for schedule in schedules_defined():
        wanted = _periodic_task_fields(schedule, models=models)
        existing = models.periodic_task.objects.filter(name=schedule.name).first()
        if existing is None:
            models.periodic_task.objects.create(name=schedule.name, **wanted)
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
    if counts["created"] or counts["updated"]:
        # A running beat reloads its schedule when this changes. The project's models say so
        # by signal; historical ones (a migration) send none.
        models.changes.objects.update_or_create(ident=1, defaults={"last_update": timezone.now()})
    return counts


def schedules_installed() -> QuerySet[PeriodicTask]:
    """The periodic tasks of ``schedules_defined`` as they are now in the database."""
    names = [schedule.name for schedule in schedules_defined()]
    return PeriodicTask.objects.filter(name__in=names).select_related("interval", "crontab")


def _periodic_task_fields(schedule: Schedule, *, models: _BeatModels) -> dict:
    # Every field a reset restores; the others (last run, run count) are beat's.
    return {
        "task": schedule.task,
        "interval": _interval(schedule.every, models=models) if schedule.every else None,
        "crontab": _crontab(**schedule.crontab, models=models) if schedule.crontab else None,
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


def _interval(every: timedelta, *, models: _BeatModels) -> Model:
    seconds = max(1, round(every.total_seconds()))
    # The project's constants: historical models have the fields, not the class attributes.
    period, count = IntervalSchedule.SECONDS, seconds
    for unit, unit_seconds in ((IntervalSchedule.HOURS, 3600), (IntervalSchedule.MINUTES, 60)):
        if seconds % unit_seconds == 0:
            period, count = unit, seconds // unit_seconds
            break
    # Not get_or_create: nothing keeps an admin from adding a duplicate row.
    intervals = models.interval.objects.filter(every=count, period=period)
    return intervals.order_by("pk").first() or models.interval.objects.create(
        every=count, period=period
    )


def _crontab(*, minute: str, hour: str, models: _BeatModels) -> Model:
    spec = {
        "minute": minute,
        "hour": hour,
        "day_of_week": "*",
        "day_of_month": "*",
        "month_of_year": "*",
        "timezone": settings.CELERY_TIMEZONE,
    }
    crontab = models.crontab.objects.filter(**spec).order_by("pk").first()
    return crontab or models.crontab.objects.create(**spec)
