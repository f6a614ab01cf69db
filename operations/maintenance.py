"""Scheduled maintenance: a runner that makes each job safe to run twice, and the jobs.

``maintenance_run`` takes the job's lock (one conditional UPDATE on its MaintenanceLock
row), runs the job, and records the run as a MaintenanceRun row, also when it was skipped
or failed. The jobs are bounded: they work in batches of OPS_MAINTENANCE_BATCH_SIZE, each
batch its own short transaction, so no table is locked for long. Each returns its counts.
Reconciliation (the job ``tasks_reconcile``) runs through the same runner, but is
tasks_app's own service: ``recovery.tasks_reconcile``.
"""

import logging
import os
import shutil
import socket
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone
from django_celery_results.models import GroupResult, TaskResult

from documents.models import Document
from operations import tallies
from operations.models import MaintenanceLock, MaintenanceRun
from tasks_app.models import ApiKey, DeadLetter, PoolStall, TaskBatch, TaskRecord

logger = logging.getLogger(__name__)

# Long enough for any bounded run; short enough that a run killed with its worker (which
# cannot release the lock) blocks its job only briefly. Reconciliation depends on that.
LOCK_LEASE = timedelta(minutes=10)
# A processing run leaves its scratch folder only when killed, and it is killed at the
# latest at documents.process's hard time limit (960 s): an hour-old folder is abandoned.
SCRATCH_GRACE = timedelta(hours=1)
# An upload stores its file before its Document row commits: a young folder without a
# row is an upload in flight, not an orphan.
STORED_FILES_GRACE = timedelta(hours=1)
DOCUMENTS_FOLDER = "documents"


def maintenance_run(
    *, job: str, work: Callable[[], dict], lease: timedelta = LOCK_LEASE
) -> MaintenanceRun:
    """Run ``work`` as ``job`` unless another run of ``job`` holds its lock; record the run.

    A run killed with its worker keeps the lock until ``lease`` is over.

    Returns the MaintenanceRun: outcome "done" with the counts ``work`` returned, or
    "skipped" if the lock was held. If ``work`` raises, the run is recorded "failed" with
    the error and the exception is raised again, so Celery reports it too.
    """
    holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    started = timezone.now()
    if not _lock_acquire(job=job, holder=holder, now=started, lease=lease):
        logger.info("maintenance skipped job=%s: another run holds the lock", job)
        return MaintenanceRun.objects.create(
            job=job, started_at=started, finished_at=started, outcome=MaintenanceRun.Outcome.SKIPPED
        )
    try:
        run = MaintenanceRun.objects.create(job=job, started_at=started)
        try:
            counts = work()
        except BaseException as exc:  # also a worker's shutdown or time limit, then raised on
            _run_finish(
                run, outcome=MaintenanceRun.Outcome.FAILED, error=f"{type(exc).__name__}: {exc}"
            )
            logger.error("maintenance failed job=%s run=%s error=%s", job, run.pk, run.error)
            raise
        _run_finish(run, outcome=MaintenanceRun.Outcome.DONE, counts=counts)
    finally:
        # Only our own hold: if the lease ran out and another run took the lock, it keeps it.
        MaintenanceLock.objects.filter(job=job, holder=holder).update(held_until=None, holder="")
    seconds = (run.finished_at - run.started_at).total_seconds()
    logger.info("maintenance done job=%s run=%s seconds=%.1f %s", job, run.pk, seconds, counts)
    return run


def _lock_acquire(*, job: str, holder: str, now: datetime, lease: timedelta) -> bool:
    MaintenanceLock.objects.get_or_create(job=job)
    # One conditional UPDATE: of two runs starting at once, exactly one changes the row.
    free = Q(held_until__isnull=True) | Q(held_until__lt=now)
    taken = MaintenanceLock.objects.filter(free, job=job).update(
        held_until=now + lease, holder=holder
    )
    return bool(taken)


def _run_finish(
    run: MaintenanceRun, *, outcome: str, counts: dict | None = None, error: str = ""
) -> None:
    run.outcome, run.counts, run.error = outcome, counts or {}, error
    run.finished_at = timezone.now()
    run.save(update_fields=["outcome", "counts", "error", "finished_at"])


# --- Jobs --------------------------------------------------------------------------------


def results_cleanup(*, now: datetime | None = None) -> dict:
    """Delete Celery's result rows (django-celery-results) older than CELERY_RESULT_EXPIRES.

    The same rows as Celery's own ``celery.backend_cleanup``, but in batches instead of
    one DELETE of a day's results.
    """
    cutoff = (now or timezone.now()) - timedelta(seconds=settings.CELERY_RESULT_EXPIRES)
    tasks = _delete_in_batches(TaskResult.objects.filter(date_done__lt=cutoff))
    groups = _delete_in_batches(GroupResult.objects.filter(date_done__lt=cutoff))
    return {
        "deleted": tasks["deleted"],
        "groups_deleted": groups["deleted"],
        "batches": tasks["batches"] + groups["batches"],
        "longest_batch_seconds": max(
            tasks["longest_batch_seconds"], groups["longest_batch_seconds"]
        ),
    }


def task_records_prune(*, now: datetime | None = None) -> dict:
    """Delete finished task records that finished more than OPS_TASK_RETENTION_DAYS ago.

    Never an unfinished task, whatever its age. Never a task with an open dead letter:
    the dead letter is deleted with its task (one-to-one, CASCADE) and staff have not
    decided about it yet; once it is resolved or pruned (TASKS_DEAD_LETTER_RETENTION_DAYS),
    the task goes too, with its resolved dead letter. Never a task whose end is still to
    be announced (``announce_pending``: its webhooks not made yet). Documents survive:
    their ``task`` becomes NULL.

    The finished counters of /metrics do not drop: the records are counted into their
    tally first (operations/tallies.py), and only records finished before its mark go.
    """
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.OPS_TASK_RETENTION_DAYS)
    # Never ahead of the clock, whatever ``now`` says: records finishing later would fall
    # behind the mark, and never be counted.
    counted_until = tallies.tally_advance(until=min(now, timezone.now()) - tallies.TALLY_GRACE)
    # Served by the (status, finished_at) index.
    expired = (
        TaskRecord.objects.finished()
        .filter(finished_at__lt=min(cutoff, counted_until))
        .exclude(dead_letter__resolution=DeadLetter.Resolution.OPEN)
        # Nor one whose end is still to be announced (webhooks): it goes once announced.
        .exclude(announce_pending=True)
    )
    counts = _delete_in_batches(expired)
    # The maintenance records themselves age out with the tasks they were about.
    old_runs = MaintenanceRun.objects.filter(started_at__lt=cutoff).exclude(
        outcome=MaintenanceRun.Outcome.RUNNING
    )
    counts["maintenance_runs_deleted"] = _delete_in_batches(old_runs)["deleted"]
    # So do the records of wedged pool processes (health counts only the last hour's), and
    # revoked API keys, which were kept to show in the admin who held what, and until when.
    old_stalls = PoolStall.objects.filter(detected_at__lt=cutoff)
    counts["pool_stalls_deleted"] = _delete_in_batches(old_stalls)["deleted"]
    old_keys = ApiKey.objects.filter(revoked_at__lt=cutoff)
    counts["revoked_api_keys_deleted"] = _delete_in_batches(old_keys)["deleted"]
    # A batch submit's list of tasks serves only its Idempotency-Key, for the key's TTL.
    replayable_since = now - timedelta(seconds=settings.TASKS_IDEMPOTENCY_TTL_SECONDS)
    old_batches = TaskBatch.objects.filter(created_at__lt=replayable_since)
    counts["task_batches_deleted"] = _delete_in_batches(old_batches)["deleted"]
    return counts


def orphan_files_cleanup(*, now: datetime | None = None) -> dict:
    """Remove abandoned scratch folders and stored files whose document no longer exists.

    Scratch: entries of DOCUMENTS_TMP_DIR older than SCRATCH_GRACE (a processing run
    killed at its hard time limit or with its worker leaves its folder). Stored: folders
    ``documents/<id>/`` in default_storage with no Document row and no file younger than
    STORED_FILES_GRACE. At most OPS_MAINTENANCE_BATCH_SIZE of each per run.
    """
    now = now or timezone.now()
    limit = settings.OPS_MAINTENANCE_BATCH_SIZE
    return {
        **_scratch_cleanup(older_than=now - SCRATCH_GRACE, limit=limit),
        **_stored_orphans_cleanup(older_than=now - STORED_FILES_GRACE, limit=limit),
    }


def dead_letters_prune(*, now: datetime | None = None) -> dict:
    """Delete dead letters created more than TASKS_DEAD_LETTER_RETENTION_DAYS ago, open or not.

    Their tasks stay, until the task-record retention (``task_records_prune``) takes them.
    """
    cutoff = (now or timezone.now()) - timedelta(days=settings.TASKS_DEAD_LETTER_RETENTION_DAYS)
    return _delete_in_batches(DeadLetter.objects.filter(created_at__lt=cutoff))


# --- Helpers ----------------------------------------------------------------------------


def _delete_in_batches(queryset: QuerySet) -> dict:
    """Delete what ``queryset`` selects, OPS_MAINTENANCE_BATCH_SIZE rows per transaction.

    ``longest_batch_seconds`` is the longest transaction: how long a batch's row locks
    were held at most.
    """
    size = settings.OPS_MAINTENANCE_BATCH_SIZE
    label = queryset.model._meta.label
    counts = {"deleted": 0, "batches": 0, "longest_batch_seconds": 0.0}
    while pks := list(queryset.order_by().values_list("pk", flat=True)[:size]):
        started = time.perf_counter()
        with transaction.atomic():
            # Only the keys: Django reads the rows it deletes, to find what refers to them,
            # and whole task records (inputs, results, tracebacks) made a batch 3x longer.
            _, per_model = queryset.model.objects.filter(pk__in=pks).only("pk").delete()
        took = round(time.perf_counter() - started, 3)
        counts["longest_batch_seconds"] = max(counts["longest_batch_seconds"], took)
        counts["batches"] += 1
        counts["deleted"] += per_model.pop(label, 0)
        for cascaded_label, deleted in per_model.items():  # e.g. a task's resolved dead letter
            also = counts.setdefault("also_deleted", {})
            also[cascaded_label] = also.get(cascaded_label, 0) + deleted
    return counts


def _scratch_cleanup(*, older_than: datetime, limit: int) -> dict:
    root = Path(settings.DOCUMENTS_TMP_DIR)
    removed = 0
    for entry in root.iterdir() if root.is_dir() else ():
        if removed >= limit:
            break
        try:
            if entry.lstat().st_mtime >= older_than.timestamp():
                continue
        except FileNotFoundError:  # its run removed it just now
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed += 1
    if removed:
        logger.info("scratch entries removed: %s", removed)
    return {"scratch_removed": removed}


def _stored_orphans_cleanup(*, older_than: datetime, limit: int) -> dict:
    counts = {"orphan_folders_removed": 0, "orphan_files_removed": 0}
    try:
        folders, _ = default_storage.listdir(DOCUMENTS_FOLDER)
    except FileNotFoundError:  # nothing stored yet
        return counts
    ids = [name for name in folders if _is_uuid(name)]  # anything else is not ours
    size = settings.OPS_MAINTENANCE_BATCH_SIZE
    for start in range(0, len(ids), size):
        batch = ids[start : start + size]
        known = {
            str(pk) for pk in Document.objects.filter(pk__in=batch).values_list("pk", flat=True)
        }
        for name in batch:
            if counts["orphan_folders_removed"] >= limit:
                return counts
            if str(uuid.UUID(name)) in known:
                continue
            removed = _stored_folder_remove(f"{DOCUMENTS_FOLDER}/{name}", older_than=older_than)
            if removed is not None:
                counts["orphan_folders_removed"] += 1
                counts["orphan_files_removed"] += removed
                logger.info("orphaned document files removed folder=%s files=%s", name, removed)
    return counts


def _stored_folder_remove(folder: str, *, older_than: datetime) -> int | None:
    """Delete the folder's files and the folder; None (nothing deleted) if any file is young."""
    subfolders, files = default_storage.listdir(folder)
    if subfolders:  # not a layout documents writes: leave it to a person
        return None
    names = [f"{folder}/{file}" for file in files]
    if any(default_storage.get_modified_time(name) >= older_than for name in names):
        return None
    for name in names:
        default_storage.delete(name)
    default_storage.delete(folder)  # FileSystemStorage removes the empty folder
    return len(names)


def _is_uuid(name: str) -> bool:
    try:
        uuid.UUID(name)
    except ValueError:
        return False
    return True
