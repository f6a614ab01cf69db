"""Celery tasks of tasks_app: the maintenance beat runs. Task types live in diagnostics.py."""

import logging

from celery import shared_task

from tasks_app import dead_letters, recovery
from tasks_app import diagnostics as _diagnostics  # noqa: F401  (registers its task types)

logger = logging.getLogger(__name__)


@shared_task(name="tasks_app.reconcile")
def reconcile() -> dict:
    """Redeliver tasks of dead workers and resend messages the broker lost."""
    counts = {**recovery.tasks_recover_stale(), **recovery.tasks_redispatch_lost()}
    logger.info("reconcile %s", counts)
    return counts


@shared_task(name="tasks_app.prune_dead_letters")
def prune_dead_letters() -> int:
    deleted = dead_letters.dead_letters_prune()
    logger.info("dead letters pruned: %s", deleted)
    return deleted
