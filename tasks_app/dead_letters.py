"""Services for dead letters: what staff do with tasks that will not succeed by themselves.

Entries are written by ``transitions.task_finish`` in the transaction that fails the task; the
maintenance job ``dead_letters_prune`` (operations) deletes them after their retention.
"""

import logging
from collections.abc import Iterable

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from tasks_app import workflows
from tasks_app.errors import DeadLetterNotRequeueable, DeadLetterResolved
from tasks_app.models import DeadLetter
from tasks_app.services import task_submit
from tasks_app.task_types import get_task_type

logger = logging.getLogger(__name__)


@transaction.atomic
def dead_letter_requeue(*, dead_letter: DeadLetter, by: AbstractBaseUser) -> DeadLetter:
    """Submit the dead task again, as a new task linked to it.

    Raises ``DeadLetterResolved`` if it was requeued or discarded already, and
    ``DeadLetterNotRequeueable`` for internal task types, whose app owns their restarts.
    """
    task_type = get_task_type(dead_letter.task_type)
    if not task_type.public:
        raise DeadLetterNotRequeueable(task_type=task_type.name)
    resolved = DeadLetter.objects.transition(
        pk=dead_letter.pk,
        to=DeadLetter.Resolution.REQUEUED,
        resolved_at=timezone.now(),
        resolved_by=by,
    )
    if not resolved:
        dead_letter.refresh_from_db()
        raise DeadLetterResolved(resolution=dead_letter.resolution)
    original = dead_letter.task
    record = task_submit(
        owner=original.owner,
        task_type=task_type,
        input_data=original.input,
        priority=original.priority,
        enforce_active_limit=False,  # staff asked for it; it still waits for a free slot
        workflow=original.workflow,
        workflow_step=original.workflow_step,
    )
    record.requeued_from = original
    record.save(update_fields=["requeued_from"])
    if record.workflow_id is not None:
        workflows.workflow_step_requeued(record=record)
    DeadLetter.objects.filter(pk=dead_letter.pk).update(requeued_task=record)
    logger.info("dead letter requeued task=%s new=%s by=%s", original.pk, record.pk, by.pk)
    dead_letter.refresh_from_db()
    return dead_letter


def dead_letter_discard(*, dead_letter: DeadLetter, by: AbstractBaseUser) -> DeadLetter:
    """Close the entry without running the task again. Raises ``DeadLetterResolved``."""
    discarded = DeadLetter.objects.transition(
        pk=dead_letter.pk,
        to=DeadLetter.Resolution.DISCARDED,
        resolved_at=timezone.now(),
        resolved_by=by,
    )
    dead_letter.refresh_from_db()
    if not discarded:
        raise DeadLetterResolved(resolution=dead_letter.resolution)
    logger.info("dead letter discarded task=%s by=%s", dead_letter.task_id, by.pk)
    return dead_letter


# What each action of ``dead_letters_resolve`` does to one dead letter, and its outcome word.
_ACTIONS = {
    "requeue": (dead_letter_requeue, "requeued"),
    "discard": (dead_letter_discard, "discarded"),
}


def dead_letters_resolve(*, action: str, ids: Iterable, by: AbstractBaseUser) -> dict[str, str]:
    """Requeue or discard many dead letters; each one on its own, so one refusal stops none.

    Returns, per id: the outcome word ("requeued", "discarded"), "not found", "already
    requeued" / "already discarded", or why its task cannot be requeued. The API's bulk
    endpoint and the admin's actions both answer from it.
    """
    operation, done = _ACTIONS[action]
    outcomes = {}
    for dead_letter_id in ids:
        dead_letter = DeadLetter.objects.filter(pk=dead_letter_id).first()
        if dead_letter is None:
            outcomes[str(dead_letter_id)] = "not found"
            continue
        try:
            operation(dead_letter=dead_letter, by=by)
            outcomes[str(dead_letter_id)] = done
        except DeadLetterResolved as error:
            outcomes[str(dead_letter_id)] = f"already {error.status}"
        except DeadLetterNotRequeueable as error:
            outcomes[str(dead_letter_id)] = str(error)
    return outcomes
