"""Write paths that people and apps use: submit and cancel a task, create an API key; and
the trace the worker's pool watchdog keeps of a wedged process.

The worker's own transitions (claim, progress, finish) are in ``transitions.py``; both
change a status only through ``TaskRecord.objects.transition``, one conditional UPDATE.
"""

import hashlib
import json
import logging
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, transaction
from django.utils import timezone

from tasks_app import admission, transitions
from tasks_app.dispatch import outbox_notify
from tasks_app.errors import IdempotencyKeyInvalid, IdempotencyKeyReused, TaskNotCancellable
from tasks_app.models import ApiKey, PoolStall, TaskRecord, TaskStatus
from tasks_app.task_types import TaskType

logger = logging.getLogger(__name__)

IDEMPOTENCY_KEY_MAX_LENGTH = 255
_CONTROL_CHARACTER = re.compile(r"[\x00-\x1f\x7f]")


@transaction.atomic
def task_submit(
    *,
    owner: AbstractBaseUser,
    task_type: TaskType,
    input_data: dict[str, Any],
    priority: int | None = None,
    enforce_active_limit: bool = True,
) -> TaskRecord:
    """Record a task for ``owner``; the relay sends its message once the record is committed.

    ``input_data`` must already be validated by ``task_type.input_serializer``. The request
    only commits the row (the outbox): the relay publishes it (dispatch.py), so a worker
    never sees an id without a row, and a submit never waits for the broker.
    Past the owner's running limit the record waits, without a message, for a free slot
    (admission.py); past their active limit it raises ``ActiveTaskLimitReached``, unless
    ``enforce_active_limit`` is off (staff requeueing a dead letter).
    """
    status = admission.initial_status(owner_id=owner.pk, enforce_active_limit=enforce_active_limit)
    record = TaskRecord.objects.create(
        owner=owner,
        task_type=task_type.name,
        queue=task_type.queue,
        priority=task_type.priority if priority is None else priority,
        input=input_data,
        status=status,
    )
    if status == TaskStatus.QUEUED:
        outbox_notify()
    logger.info(
        "task submitted id=%s type=%s owner=%s status=%s",
        record.pk,
        record.task_type,
        owner.pk,
        status,
    )
    return record


@dataclass(frozen=True)
class Submission:
    """What a submit made: the record, and whether an Idempotency-Key replayed an earlier
    one (None when the client sent no key)."""

    record: TaskRecord
    replayed: bool | None = None


def task_submit_once(
    *,
    owner: AbstractBaseUser,
    task_type: TaskType,
    input_data: dict[str, Any],
    priority: int | None = None,
    idempotency_key: str = "",
) -> Submission:
    """``task_submit`` at most once per ``idempotency_key`` of ``owner`` (within the TTL).

    The key is the client's Idempotency-Key header as sent; an empty one submits as usual.
    A key too long or with control characters raises ``IdempotencyKeyInvalid``; a key
    reused with a different submission raises ``IdempotencyKeyReused``: the client has a
    bug we must not hide.
    """
    key = idempotency_key_clean(idempotency_key)
    if not key:
        record = task_submit(
            owner=owner, task_type=task_type, input_data=input_data, priority=priority
        )
        return Submission(record=record)
    fingerprint = _fingerprint(task_type=task_type, input_data=input_data, priority=priority)
    expired_before = timezone.now() - timedelta(seconds=settings.TASKS_IDEMPOTENCY_TTL_SECONDS)
    # A key older than the window is free again; its old task keeps no claim on it.
    TaskRecord.objects.filter(
        owner=owner, idempotency_key=key, created_at__lt=expired_before
    ).update(idempotency_key=None)
    for _ in range(2):
        existing = TaskRecord.objects.filter(owner=owner, idempotency_key=key).first()
        if existing is not None:
            if existing.request_fingerprint != fingerprint:
                raise IdempotencyKeyReused(key=key)
            logger.info("task submission replayed id=%s key=%s", existing.pk, key)
            return Submission(record=existing, replayed=True)
        try:
            with transaction.atomic():
                record = task_submit(
                    owner=owner, task_type=task_type, input_data=input_data, priority=priority
                )
                TaskRecord.objects.filter(pk=record.pk).update(
                    idempotency_key=key, request_fingerprint=fingerprint
                )
            return Submission(record=record, replayed=False)
        except IntegrityError:
            continue  # a concurrent request with the same key won; return its task
    raise IdempotencyKeyReused(key=key)


def idempotency_key_clean(raw_key: str) -> str:
    """The key without surrounding blanks; raises ``IdempotencyKeyInvalid`` if unusable."""
    key = raw_key.strip()
    if len(key) > IDEMPOTENCY_KEY_MAX_LENGTH:
        raise IdempotencyKeyInvalid(
            f"Ensure this header has no more than {IDEMPOTENCY_KEY_MAX_LENGTH} characters."
        )
    # The key is stored and may be logged: no NUL (PostgreSQL refuses it), no line breaks.
    if _CONTROL_CHARACTER.search(key):
        raise IdempotencyKeyInvalid("Use printable characters only, no control characters.")
    return key


def _fingerprint(*, task_type: TaskType, input_data: dict, priority: int | None) -> str:
    submission = {"task_type": task_type.name, "input": input_data, "priority": priority}
    encoded = json.dumps(submission, sort_keys=True, cls=DjangoJSONEncoder)
    return hashlib.sha256(encoded.encode()).hexdigest()


def task_cancel(*, record: TaskRecord) -> TaskRecord:
    """Cancel a task that has not finished. Cancelling a cancelled task changes nothing.

    A queued task will be refused by every worker (the claim needs ``queued``); a running
    one stops within ``TASKS_CANCEL_CHECK_SECONDS``, or at its next progress report.
    Raises ``TaskNotCancellable`` for a task that already succeeded, failed or timed out.
    """
    cancelled = transitions.task_finish(
        task_id=record.pk, to=TaskStatus.CANCELLED, cancel_requested_at=timezone.now()
    )
    record.refresh_from_db()
    if not cancelled:
        if record.status == TaskStatus.CANCELLED:
            return record
        raise TaskNotCancellable(status=record.status)

    logger.info("task cancelled id=%s type=%s", record.pk, record.task_type)
    # No revoke(): the record is the cancel. A queued task is refused at its claim; a
    # running one is stopped by its own watch (watch.py) or at its next progress report.
    # revoke(terminate=True) signalled whichever pool process had the task by pid, which
    # could already run the next task (issue 14).
    return record


def api_key_create(*, owner: AbstractBaseUser, name: str) -> tuple[ApiKey, str]:
    """Create a key for ``owner``. The raw key is returned once and never stored."""
    prefix = secrets.token_hex(4)
    raw_key = f"jsk_{prefix}_{secrets.token_urlsafe(32)}"
    api_key = ApiKey.objects.create(
        owner=owner, name=name, prefix=prefix, key_digest=ApiKey.digest(raw_key)
    )
    logger.info("api key created prefix=%s owner=%s", prefix, owner.pk)
    return api_key, raw_key


def pool_stall_record(
    *,
    worker: str,
    pid: int | None,
    task_id: str,
    task_type: str,
    waited_seconds: float,
    action: str,
) -> PoolStall:
    """Keep a trace of a wedged pool process that the worker's watchdog dealt with."""
    return PoolStall.objects.create(
        worker=worker,
        pid=pid,
        task_id=task_id,
        task_type=task_type,
        waited_seconds=round(waited_seconds, 1),
        action=action,
    )
