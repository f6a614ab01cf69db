"""Write paths that people and apps use: submit and cancel a task, create an API key; and
the trace the worker's pool watchdog keeps of a wedged process.

The worker's own transitions (claim, progress, finish) are in ``transitions.py``; both
change a status only through ``TaskRecord.objects.transition``, one conditional UPDATE.
"""

import logging
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from tasks_app import admission, idempotency, transitions
from tasks_app.errors import ActiveTaskLimitReached, ApiKeyLimitReached, TaskNotCancellable
from tasks_app.idempotency import create_once, idempotency_key_clean
from tasks_app.models import ApiKey, PoolStall, TaskBatch, TaskRecord, TaskStatus
from tasks_app.task_types import TaskType

logger = logging.getLogger(__name__)

# Rows per INSERT statement of a batch submit.
BULK_INSERT_ROWS = 500


def task_submit(
    *,
    owner: AbstractBaseUser,
    task_type: TaskType,
    input_data: dict[str, Any],
    priority: int | None = None,
    enforce_active_limit: bool = True,
    idempotency_key: str | None = None,
    request_fingerprint: str = "",
    callback_url: str = "",
    workflow=None,
    workflow_step: str = "",
) -> TaskRecord:
    """Record a task for ``owner``; the relay sends its message once the record is committed.

    ``input_data`` must already be validated by ``task_type.input_serializer``. The request
    only commits the row (the outbox): the relay publishes it (dispatch.py), so a worker
    never sees an id without a row, and a submit never waits for the broker.
    Past the owner's running limit the record waits, without a message, for a free slot
    (admission.py); past their active limit it raises ``ActiveTaskLimitReached``, unless
    ``enforce_active_limit`` is off (staff requeueing a dead letter). ``idempotency_key``
    and ``request_fingerprint`` are stored with the record (``task_submit_once``).
    """
    # Committed at once (or with the caller's transaction); a queued one wakes the relay.
    record = admission.record_create_admitted(
        TaskRecord(
            owner=owner,
            task_type=task_type.name,
            queue=task_type.queue,
            priority=task_type.priority if priority is None else priority,
            input=input_data,
            idempotency_key=idempotency_key,
            request_fingerprint=request_fingerprint,
            callback_url=callback_url,
            workflow=workflow,
            workflow_step=workflow_step,
        ),
        enforce_active_limit=enforce_active_limit,
    )
    logger.info(
        "task submitted id=%s type=%s owner=%s status=%s",
        record.pk,
        record.task_type,
        owner.pk,
        record.status,
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
    callback_url: str = "",
) -> Submission:
    """``task_submit`` at most once per ``idempotency_key`` of ``owner`` (within the TTL).

    The key is the client's Idempotency-Key header as sent; an empty one submits as usual.
    A key too long or with control characters raises ``IdempotencyKeyInvalid``; a key
    reused with a different submission raises ``IdempotencyKeyReused``: the client has a
    bug we must not hide.
    """

    def submit(**keyed_fields) -> TaskRecord:
        return task_submit(
            owner=owner,
            task_type=task_type,
            input_data=input_data,
            priority=priority,
            callback_url=callback_url,
            **keyed_fields,
        )

    key = idempotency_key_clean(idempotency_key)
    if not key:
        return Submission(record=submit())
    submission = {"task_type": task_type.name, "input": input_data, "priority": priority}
    if callback_url:  # absent, the digest stays what keys stored before callbacks existed
        submission["callback_url"] = callback_url
    digest = idempotency.request_fingerprint(submission)
    record, replayed = create_once(
        keyed=TaskRecord.objects.filter(owner=owner),
        key=key,
        fingerprint=digest,
        create=submit,
    )
    return Submission(record=record, replayed=replayed)


@dataclass(frozen=True)
class TaskRequest:
    """One task of a batch, validated: its type, input and priority."""

    task_type: TaskType
    input_data: dict[str, Any]
    priority: int | None = None
    callback_url: str = ""


@dataclass(frozen=True)
class BatchSubmission:
    """What a batch submit made: its records in the order of the request, and whether an
    Idempotency-Key replayed an earlier batch (None when the client sent no key)."""

    batch: TaskBatch
    records: list[TaskRecord]
    replayed: bool | None = None


@transaction.atomic
def tasks_submit_batch(
    *,
    owner: AbstractBaseUser,
    requests: list[TaskRequest],
    idempotency_key: str | None = None,
    request_fingerprint: str = "",
) -> BatchSubmission:
    """Record many tasks for ``owner`` in one transaction, all or none; the relay sends them.

    One lock of the owner and one bulk insert, whatever the size. Fair use applies to the
    batch as a whole: past the owner's active limit the whole batch raises
    ``ActiveTaskLimitReached``; past their running limit the rest of it waits (admission.py).
    """
    # The relay is woken at commit when some of the batch is queued (a free slot).
    load = admission.owner_load_locked(owner.pk, wake_relay_if_free=True)
    if load.active + len(requests) > load.max_active:
        raise ActiveTaskLimitReached(limit=load.max_active, requested=len(requests))
    records = [
        TaskRecord(
            owner=owner,
            task_type=request.task_type.name,
            queue=request.task_type.queue,
            priority=request.task_type.priority if request.priority is None else request.priority,
            input=request.input_data,
            callback_url=request.callback_url,
            status=TaskStatus.QUEUED if position < load.free_slots else TaskStatus.WAITING,
        )
        for position, request in enumerate(requests)
    ]
    TaskRecord.objects.bulk_create(records, batch_size=BULK_INSERT_ROWS)
    batch = TaskBatch.objects.create(
        owner=owner,
        task_ids=[str(record.pk) for record in records],
        idempotency_key=idempotency_key,
        request_fingerprint=request_fingerprint,
    )
    logger.info("task batch submitted id=%s owner=%s count=%s", batch.pk, owner.pk, len(records))
    return BatchSubmission(batch=batch, records=records)


def tasks_submit_batch_once(
    *, owner: AbstractBaseUser, requests: list[TaskRequest], idempotency_key: str = ""
) -> BatchSubmission:
    """``tasks_submit_batch`` at most once per ``idempotency_key``, as ``task_submit_once``.

    Batch keys and single-task keys are kept apart: each endpoint has its own.
    """

    key = idempotency_key_clean(idempotency_key)
    if not key:
        return tasks_submit_batch(owner=owner, requests=requests)
    made: list[BatchSubmission] = []

    def submit(**keyed_fields) -> TaskBatch:
        made.append(tasks_submit_batch(owner=owner, requests=requests, **keyed_fields))
        return made[-1].batch

    digest = idempotency.request_fingerprint(
        [
            {
                "task_type": request.task_type.name,
                "input": request.input_data,
                "priority": request.priority,
                # Absent when empty: the digest stays what keys stored before callbacks.
                **({"callback_url": request.callback_url} if request.callback_url else {}),
            }
            for request in requests
        ]
    )
    batch, replayed = create_once(
        keyed=TaskBatch.objects.filter(owner=owner), key=key, fingerprint=digest, create=submit
    )
    if not replayed:
        return BatchSubmission(batch=batch, records=made[-1].records, replayed=False)
    records = TaskRecord.objects.in_bulk(batch.task_ids)
    ordered = [
        records[uuid.UUID(task_id)] for task_id in batch.task_ids if uuid.UUID(task_id) in records
    ]
    return BatchSubmission(batch=batch, records=ordered, replayed=True)


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


@transaction.atomic
def api_key_create(*, owner: AbstractBaseUser, name: str) -> tuple[ApiKey, str]:
    """Create a key for ``owner``. The raw key is returned once and never stored.

    Raises ``ApiKeyLimitReached`` past the setting API_KEYS_MAX_PER_USER unrevoked keys.
    """
    # The owner's row is locked, so two requests at once cannot both pass the count.
    get_user_model().objects.select_for_update().filter(pk=owner.pk).first()
    limit = settings.API_KEYS_MAX_PER_USER
    if ApiKey.objects.filter(owner=owner, revoked_at__isnull=True).count() >= limit:
        raise ApiKeyLimitReached(limit=limit)
    prefix = secrets.token_hex(4)
    raw_key = f"jsk_{prefix}_{secrets.token_urlsafe(32)}"
    api_key = ApiKey.objects.create(
        owner=owner, name=name, prefix=prefix, key_digest=ApiKey.digest(raw_key)
    )
    logger.info("api key created prefix=%s owner=%s", prefix, owner.pk)
    return api_key, raw_key


def api_key_revoke(*, api_key: ApiKey) -> ApiKey:
    """Revoke a key: it authenticates nothing from now on. Revoking twice is harmless."""
    now = timezone.now()
    if ApiKey.objects.filter(pk=api_key.pk, revoked_at__isnull=True).update(revoked_at=now):
        api_key.revoked_at = now
        logger.info("api key revoked prefix=%s owner=%s", api_key.prefix, api_key.owner_id)
    else:
        api_key.refresh_from_db(fields=["revoked_at"])
    return api_key


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
