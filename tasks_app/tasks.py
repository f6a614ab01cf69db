"""Celery tasks of tasks_app: the maintenance beat runs. Task types live in diagnostics.py."""

import logging

from celery import shared_task

from operations.maintenance import maintenance_run, stuck_tasks_recover
from tasks_app import dead_letters
from tasks_app import diagnostics as _diagnostics  # noqa: F401  (registers its task types)

logger = logging.getLogger(__name__)


@shared_task(name="tasks_app.reconcile")
def reconcile() -> dict:
    """Redeliver tasks of dead workers and resend messages the broker lost."""
    # Through the runner: one run at a time, recorded as a MaintenanceRun (it logs too).
    run = maintenance_run(job="stuck_tasks", work=stuck_tasks_recover)
    return {"outcome": run.outcome, **run.counts}


@shared_task(name="tasks_app.prune_dead_letters")
def prune_dead_letters() -> dict:
    run = maintenance_run(
        job="dead_letters_prune", work=lambda: {"deleted": dead_letters.dead_letters_prune()}
    )
    return {"outcome": run.outcome, **run.counts}
