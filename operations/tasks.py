"""Celery tasks that beat sends for health and maintenance. Each calls one service."""

from collections.abc import Callable
from datetime import timedelta

from celery import shared_task
from django.conf import settings

from operations import alerts, maintenance
from tasks_app import recovery


@shared_task(name="operations.record_health_snapshot")
def record_health_snapshot() -> str:
    """Store the service's health (beat, every minute); a new critical notifies staff.

    The service logs what it recorded; the status is returned for the results row.
    """
    return alerts.health_snapshot_record().status


# Maintenance: each runs one job through maintenance_run (lock, MaintenanceRun record).


def _job_run(job: str, work: Callable[[], dict], **options) -> dict:
    run = maintenance.maintenance_run(job=job, work=work, **options)
    return {"outcome": run.outcome, **run.counts}


@shared_task(name="operations.reconcile_tasks")
def reconcile_tasks() -> dict:
    """Give dead workers' tasks back to the queue, send lost messages again, admit waiting
    tasks (beat, every TASKS_RECONCILE_SECONDS)."""
    # A run killed with its worker holds the lock until its lease ends, and this job is what
    # repairs worker deaths: its lease is no longer than a dead worker's task waits. Two runs
    # at once are harmless (every transition is conditional, a second message is refused).
    lease = timedelta(seconds=settings.TASKS_HEARTBEAT_TIMEOUT_SECONDS)
    return _job_run("tasks_reconcile", recovery.tasks_reconcile, lease=lease)


@shared_task(name="operations.cleanup_results")
def cleanup_results() -> dict:
    """Delete expired Celery result rows (beat, hourly)."""
    return _job_run("results_cleanup", maintenance.results_cleanup)


@shared_task(name="operations.prune_task_records")
def prune_task_records() -> dict:
    """Delete finished task records past their retention (beat, daily)."""
    return _job_run("task_records_prune", maintenance.task_records_prune)


@shared_task(name="operations.prune_dead_letters")
def prune_dead_letters() -> dict:
    """Delete dead letters past their retention (beat, daily)."""
    return _job_run("dead_letters_prune", maintenance.dead_letters_prune)


@shared_task(name="operations.cleanup_orphan_files")
def cleanup_orphan_files() -> dict:
    """Remove abandoned scratch folders and files of deleted documents (beat, hourly)."""
    return _job_run("orphan_files_cleanup", maintenance.orphan_files_cleanup)


# The names reconcile_tasks and prune_dead_letters had in tasks_app. Migration 0003 renames
# them in the schedule rows, but a beat that has not reloaded yet, or a message already
# queued, still sends them: registered for one more release, so that those run instead of
# being refused as unregistered tasks. Remove them in the release after.


@shared_task(name="tasks_app.reconcile")
def reconcile_tasks_by_old_name() -> dict:
    return reconcile_tasks()


@shared_task(name="tasks_app.prune_dead_letters")
def prune_dead_letters_by_old_name() -> dict:
    return prune_dead_letters()
