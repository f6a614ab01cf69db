"""Read paths of task records. Ownership is enforced here, so views cannot forget it."""

import uuid
from collections.abc import Iterable
from datetime import datetime

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet

from tasks_app.models import ApiKey, DeadLetter, TaskRecord, TaskStatus, Workflow


def task_list_for_user(
    *, user: AbstractBaseUser, fields: Iterable[str] = ()
) -> QuerySet[TaskRecord]:
    """The records ``user`` may see, newest first: their own, or everyone's for staff.

    With ``fields``, only those columns are read, and of the owner only the username: what
    an API response shows. A page of records holds no tracebacks and error histories then,
    which can be long and which no response shows.
    """
    records = TaskRecord.objects.select_related("owner")
    if fields:
        records = records.only(*fields, f"owner__{get_user_model().USERNAME_FIELD}")
    if not user.is_staff:
        records = records.filter(owner=user)
    return records.order_by("-created_at", "-id")


def task_changes_for_owners(
    *, owner_ids: Iterable[int], since: datetime, fields: Iterable[str], limit: int
) -> list[TaskRecord]:
    """The records of these owners changed after ``since``, in the order they changed: what
    their event streams show next (tasks_app/events.py). One index range per owner."""
    return list(
        TaskRecord.objects.filter(owner_id__in=list(owner_ids), changed_at__gt=since)
        .only("owner_id", "changed_at", *fields)
        .order_by("changed_at", "id")[:limit]
    )


def task_get_for_user(
    *, user: AbstractBaseUser, task_id: str, fields: Iterable[str] = ()
) -> TaskRecord | None:
    """One record ``user`` may see, or None: unknown, malformed and others' ids look alike."""
    try:
        pk = uuid.UUID(str(task_id))
    except ValueError:
        return None
    return task_list_for_user(user=user, fields=fields).filter(pk=pk).first()


def dead_letter_list() -> QuerySet[DeadLetter]:
    """Every dead letter, newest first (a staff view: no owner filter)."""
    return DeadLetter.objects.select_related("owner").order_by("-created_at", "-id")


def dead_letters_open() -> QuerySet[DeadLetter]:
    """Dead letters staff have neither requeued nor discarded, newest first."""
    return dead_letter_list().filter(resolution=DeadLetter.Resolution.OPEN)


def dead_letter_get(*, dead_letter_id) -> DeadLetter | None:
    try:
        pk = uuid.UUID(str(dead_letter_id))
    except ValueError:
        return None
    return dead_letter_list().filter(pk=pk).first()


def tasks_running(*, limit: int) -> list[TaskRecord]:
    """Running tasks, longest-running first, with their owners (a staff view)."""
    return list(
        TaskRecord.objects.running()
        .select_related("owner")
        .only(
            "task_type",
            f"owner__{get_user_model().USERNAME_FIELD}",
            "worker",
            "attempts",
            "started_at",
            "progress_current",
            "progress_total",
            "progress_message",
        )
        .order_by("started_at")[:limit]
    )


def oldest_queued_at(*, queues: Iterable[str]) -> dict[str, datetime | None]:
    """When the longest-waiting queued task of each queue was submitted, or None."""
    return {
        queue: TaskRecord.objects.filter(status=TaskStatus.QUEUED, queue=queue)
        .order_by("created_at")
        .values_list("created_at", flat=True)
        .first()
        for queue in queues
    }


def dead_letter_open_of_task(*, task: TaskRecord) -> DeadLetter | None:
    """The task's dead letter if it is still open (waiting for staff), else None."""
    return DeadLetter.objects.filter(task=task, resolution=DeadLetter.Resolution.OPEN).first()


def task_was_cancelled(*, task_id, attempt: int) -> bool:
    """Whether the task was cancelled while ``attempt`` held it (not just finished or requeued)."""
    return TaskRecord.objects.filter(
        pk=task_id, status=TaskStatus.CANCELLED, attempts=attempt
    ).exists()


def api_key_list_for_user(*, user: AbstractBaseUser) -> QuerySet[ApiKey]:
    """The user's own API keys, newest first, revoked ones included (staff too: a key is
    its owner's to manage; the admin shows everyone's)."""
    return ApiKey.objects.filter(owner=user).order_by("-created_at", "-id")


def api_key_get_for_user(*, user: AbstractBaseUser, api_key_id) -> ApiKey | None:
    try:
        pk = int(str(api_key_id))
    except ValueError:
        return None
    if not 0 < pk < 2**63:  # past a bigint, PostgreSQL would fail the query itself
        return None
    return api_key_list_for_user(user=user).filter(pk=pk).first()


def workflow_list_for_user(*, user: AbstractBaseUser) -> QuerySet[Workflow]:
    """The workflows ``user`` may see, newest first: their own, or everyone's for staff."""
    workflows = Workflow.objects.select_related("owner")
    if not user.is_staff:
        workflows = workflows.filter(owner=user)
    return workflows.order_by("-created_at", "-id")


def workflow_get_for_user(*, user: AbstractBaseUser, workflow_id) -> Workflow | None:
    try:
        pk = uuid.UUID(str(workflow_id))
    except ValueError:
        return None
    return workflow_list_for_user(user=user).filter(pk=pk).first()


def workflow_step_records(*, workflow: Workflow) -> list[TaskRecord]:
    """The workflow's task records, oldest first (a requeued step has several)."""
    return list(
        TaskRecord.objects.filter(workflow=workflow)
        .only("id", "workflow_step", "status", "attempts", "created_at", "finished_at")
        .order_by("created_at", "id")
    )
