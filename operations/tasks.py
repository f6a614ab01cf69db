"""Celery tasks that beat sends for health and maintenance. Each calls one service."""

from celery import shared_task

from operations import alerts, maintenance


@shared_task(name="operations.record_health_snapshot")
def record_health_snapshot() -> str:
    """Store the service's health (beat, every minute); a new critical notifies staff.

    The service logs what it recorded; the status is returned for the results row.
    """
    return alerts.health_snapshot_record().status


# Maintenance: each runs one job through maintenance_run (lock, MaintenanceRun record).


@shared_task(name="operations.cleanup_results")
def cleanup_results() -> dict:
    """Delete expired Celery result rows (beat, hourly)."""
    run = maintenance.maintenance_run(job="results_cleanup", work=maintenance.results_cleanup)
    return {"outcome": run.outcome, **run.counts}


@shared_task(name="operations.prune_task_records")
def prune_task_records() -> dict:
    """Delete finished task records past their retention (beat, daily)."""
    run = maintenance.maintenance_run(job="task_records_prune", work=maintenance.task_records_prune)
    return {"outcome": run.outcome, **run.counts}


@shared_task(name="operations.cleanup_orphan_files")
def cleanup_orphan_files() -> dict:
    """Remove abandoned scratch folders and files of deleted documents (beat, hourly)."""
    run = maintenance.maintenance_run(
        job="orphan_files_cleanup", work=maintenance.orphan_files_cleanup
    )
    return {"outcome": run.outcome, **run.counts}
