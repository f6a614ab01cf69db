"""Celery tasks of tasks_app: the maintenance beat runs. Task types live in diagnostics.py."""

import logging
from datetime import timedelta

from celery import shared_task
from django.conf import settings

from operations.maintenance import maintenance_run, stuck_tasks_recover
from tasks_app import dead_letters
from tasks_app import diagnostics as _diagnostics  # noqa: F401  (registers its task types)

logger = logging.getLogger(__name__)


@shared_task(name="tasks_app.reconcile")
def reconcile() -> dict:
    """Redeliver tasks of dead workers and resend messages the broker lost."""
    # Through the runner: one run at a time, recorded as a MaintenanceRun (it logs too).
    # A run killed with its worker holds the lock until its lease ends, and this job is what
    # repairs worker deaths: its lease is no longer than a dead worker's task waits. Two runs
    # at once are harmless (every transition is conditional, a second message is refused).
    lease = timedelta(seconds=settings.TASKS_HEARTBEAT_TIMEOUT_SECONDS)
    run = maintenance_run(job="stuck_tasks", work=stuck_tasks_recover, lease=lease)
    return {"outcome": run.outcome, **run.counts}


@shared_task(name="tasks_app.prune_dead_letters")
def prune_dead_letters() -> dict:
    run = maintenance_run(
        job="dead_letters_prune", work=lambda: {"deleted": dead_letters.dead_letters_prune()}
    )
    return {"outcome": run.outcome, **run.counts}
