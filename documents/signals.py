"""Celery signal handlers of the documents app."""

import logging

from celery.signals import worker_process_shutdown

from documents.processing.spare import process_spare

logger = logging.getLogger(__name__)


def connect_handlers() -> None:
    """Connect the handlers below (the app's ``ready()`` does, in every process)."""
    worker_process_shutdown.connect(end_spare_child, dispatch_uid="documents.end_spare_child")


def end_spare_child(**kwargs) -> None:
    """A pool process that exits (shutdown, max-tasks-per-child) ends its spare extraction child.

    Needed because billiard leaves a pool process with ``os._exit``, which skips ``atexit``.
    """
    try:
        process_spare.discard()
    except Exception:
        logger.exception("could not end the spare extraction child")
