import os
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from celery import current_app
from django.conf import settings as django_settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_celery_results.models import GroupResult, TaskResult

from documents.models import Document
from operations import maintenance, tallies
from operations import tasks as operations_tasks
from operations.maintenance import maintenance_run
from operations.models import MaintenanceLock, MaintenanceRun, TaskTally, TaskTallyMark
from tasks_app.broker import broker_queue_size
from tasks_app.models import ApiKey, DeadLetter, PoolStall, TaskBatch, TaskRecord, TaskStatus
from tasks_app.services import api_key_create
from tests.factories import TaskRecordFactory

pytestmark = pytest.mark.django_db


def ago(**delta) -> timezone.datetime:
    return timezone.now() - timedelta(**delta)


def untimed(counts: dict) -> dict:
    """A job's counts without its longest batch's time, which is checked for its type only."""
    counts = dict(counts)
    assert isinstance(counts.pop("longest_batch_seconds"), float)
    return counts


# --- The runner --------------------------------------------------------------------------


def test_a_run_records_its_counts_and_releases_the_lock():
    run = maintenance_run(job="demo", work=lambda: {"deleted": 3})

    run.refresh_from_db()
    assert (run.job, run.outcome, run.counts, run.error) == ("demo", "done", {"deleted": 3}, "")
    assert run.started_at <= run.finished_at
    lock = MaintenanceLock.objects.get(job="demo")
    assert (lock.held_until, lock.holder) == (None, "")


def test_a_run_while_another_holds_the_lock_is_skipped_and_does_no_work():
    MaintenanceLock.objects.create(job="demo", held_until=ago(minutes=-5), holder="other-run")
    calls = []

    run = maintenance_run(job="demo", work=lambda: calls.append(1) or {})

    assert run.outcome == MaintenanceRun.Outcome.SKIPPED
    assert calls == []
    assert MaintenanceLock.objects.get(job="demo").holder == "other-run"  # still theirs


def test_two_runs_of_one_job_at_once_do_the_work_once():
    inner_runs = []

    def work():
        # A second run starts while this one holds the lock.
        inner_runs.append(maintenance_run(job="demo", work=lambda: {"ran": "inner"}))
        return {"ran": "outer"}

    outer = maintenance_run(job="demo", work=work)

    assert (outer.outcome, outer.counts) == ("done", {"ran": "outer"})
    assert [(run.outcome, run.counts) for run in inner_runs] == [("skipped", {})]
    # Other jobs have locks of their own.
    assert maintenance_run(job="other", work=lambda: {}).outcome == "done"


def test_a_lock_whose_lease_ran_out_is_taken_over():
    # Its holder was killed and could not release it.
    MaintenanceLock.objects.create(job="demo", held_until=ago(seconds=1), holder="dead-run")

    run = maintenance_run(job="demo", work=lambda: {"n": 1})

    assert run.outcome == "done"
    assert MaintenanceLock.objects.get(job="demo").held_until is None


def test_a_failed_run_is_recorded_raised_and_releases_the_lock():
    def work():
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        maintenance_run(job="demo", work=work)

    run = MaintenanceRun.objects.get(job="demo")
    assert (run.outcome, run.error) == ("failed", "RuntimeError: disk full")
    assert run.finished_at is not None
    assert MaintenanceLock.objects.get(job="demo").held_until is None


# --- Task-record retention ---------------------------------------------------------------


def finished_task(*, status=TaskStatus.SUCCEEDED, days_ago: float, **fields) -> TaskRecord:
    at = ago(days=days_ago)
    return TaskRecordFactory(status=status, created_at=at, finished_at=at, **fields)


def dead_letter(task: TaskRecord, *, resolution: str) -> DeadLetter:
    return DeadLetter.objects.create(
        task=task,
        owner=task.owner,
        task_type=task.task_type,
        final_status=task.status,
        task_created_at=task.created_at,
        resolution=resolution,
    )


def test_retention_deletes_exactly_the_finished_records_past_their_age(settings):
    settings.OPS_TASK_RETENTION_DAYS = 90
    old = [
        finished_task(status=status, days_ago=91)
        for status in (TaskStatus.SUCCEEDED, TaskStatus.CANCELLED, TaskStatus.TIMED_OUT)
    ]
    old_failed_resolved = finished_task(status=TaskStatus.FAILED, days_ago=120)
    dead_letter(old_failed_resolved, resolution=DeadLetter.Resolution.DISCARDED)
    kept = [
        finished_task(days_ago=89),  # recent
        *(
            TaskRecordFactory(status=status, created_at=ago(days=400))  # unfinished, old
            for status in (TaskStatus.QUEUED, TaskStatus.RUNNING, TaskStatus.RETRYING)
        ),
    ]
    old_failed_open = finished_task(status=TaskStatus.FAILED, days_ago=120)
    open_letter = dead_letter(old_failed_open, resolution=DeadLetter.Resolution.OPEN)
    kept.append(old_failed_open)
    # Its webhooks not made yet (the webhooks process was down): kept until they are.
    kept.append(finished_task(days_ago=120, announce_pending=True))

    counts = maintenance.task_records_prune()

    assert set(TaskRecord.objects.values_list("pk", flat=True)) == {task.pk for task in kept}
    assert counts["deleted"] == len(old) + 1
    # The resolved dead letter went with its task; the open one is still there.
    assert list(DeadLetter.objects.values_list("pk", flat=True)) == [open_letter.pk]
    assert counts["also_deleted"] == {"tasks_app.DeadLetter": 1}


def test_retention_works_in_batches_and_leaves_documents_without_their_task(settings, user):
    settings.OPS_MAINTENANCE_BATCH_SIZE = 2
    tasks = [finished_task(days_ago=100, owner=user) for _ in range(5)]
    document = Document.objects.create(owner=user, filename="a.txt", task=tasks[0])

    counts = maintenance.task_records_prune()

    assert (counts["deleted"], counts["batches"]) == (5, 3)
    assert 0 <= counts["longest_batch_seconds"] < 60
    assert not TaskRecord.objects.exists()
    document.refresh_from_db()
    assert document.task is None


def test_retention_tallies_what_it_deletes_and_keeps_what_finished_after_the_tally(settings):
    # No retention time at all: only the tally's grace keeps the youngest record.
    settings.OPS_TASK_RETENTION_DAYS = 0
    tallied = finished_task(days_ago=1)
    just_now = TaskRecordFactory(
        status=TaskStatus.SUCCEEDED, finished_at=timezone.now() - timedelta(minutes=1)
    )

    counts = maintenance.task_records_prune()

    assert counts["deleted"] == 1
    assert list(TaskRecord.objects.values_list("pk", flat=True)) == [just_now.pk]
    tally = TaskTally.objects.get(task_type=tallied.task_type, status=TaskStatus.SUCCEEDED)
    assert tally.count == 1
    assert TaskTallyMark.objects.get().counted_until < just_now.finished_at


def test_retention_for_a_later_date_never_puts_the_tally_ahead_of_the_clock():
    finished_task(days_ago=100)

    counts = maintenance.task_records_prune(now=timezone.now() + timedelta(days=365))

    assert counts["deleted"] == 1
    assert TaskTallyMark.objects.get().counted_until <= timezone.now() - tallies.TALLY_GRACE


def test_a_batch_reads_only_the_keys_of_the_records_it_deletes():
    finished_task(days_ago=100, error_traceback="Traceback …" * 1000)

    with CaptureQueriesContext(connection) as captured:
        counts = maintenance.task_records_prune()

    assert counts["deleted"] == 1
    reads = [query["sql"] for query in captured if query["sql"].startswith("SELECT")]
    assert any("taskrecord" in sql for sql in reads)
    assert not any("error_traceback" in sql for sql in reads)


def test_prune_task_records_task_runs_the_job_through_the_runner(user):
    finished_task(days_ago=1000)
    TaskBatch.objects.create(owner=user, created_at=timezone.now() - timedelta(days=2))
    kept = TaskBatch.objects.create(owner=user)  # its Idempotency-Key may still be replayed

    result = operations_tasks.prune_task_records()

    expected = {"deleted": 1, "batches": 1, "maintenance_runs_deleted": 0}
    expected |= {"pool_stalls_deleted": 0, "revoked_api_keys_deleted": 0}
    expected["task_batches_deleted"] = 1
    assert untimed(result) == {"outcome": "done", **expected}
    run = MaintenanceRun.objects.get(job="task_records_prune")
    assert untimed(run.counts) == expected
    assert list(TaskBatch.objects.all()) == [kept]


def test_retention_also_deletes_old_maintenance_records(settings):
    settings.OPS_TASK_RETENTION_DAYS = 90
    old = MaintenanceRun.objects.create(job="x", started_at=ago(days=91), outcome="done")
    recent = MaintenanceRun.objects.create(job="x", started_at=ago(days=89), outcome="done")

    counts = maintenance.task_records_prune()

    assert counts["maintenance_runs_deleted"] == 1
    assert set(MaintenanceRun.objects.values_list("pk", flat=True)) == {recent.pk}
    assert not MaintenanceRun.objects.filter(pk=old.pk).exists()


def api_key_for(user, *, name: str, **fields) -> ApiKey:
    api_key, _ = api_key_create(owner=user, name=name)
    ApiKey.objects.filter(pk=api_key.pk).update(**fields)
    return api_key


def test_retention_deletes_old_pool_stalls_and_keys_revoked_long_ago(settings, user):
    settings.OPS_TASK_RETENTION_DAYS = 90
    stall = {"worker": "w@h", "task_id": "t", "waited_seconds": 5, "action": "replaced"}
    PoolStall.objects.create(detected_at=ago(days=91), **stall)
    recent_stall = PoolStall.objects.create(detected_at=ago(days=89), **stall)
    long_revoked = api_key_for(user, name="old", revoked_at=ago(days=91))
    lately_revoked = api_key_for(user, name="recent", revoked_at=ago(days=89))
    in_use = api_key_for(user, name="in use", revoked_at=None, created_at=ago(days=400))

    counts = maintenance.task_records_prune()

    assert (counts["pool_stalls_deleted"], counts["revoked_api_keys_deleted"]) == (1, 1)
    assert list(PoolStall.objects.all()) == [recent_stall]
    assert set(ApiKey.objects.all()) == {lately_revoked, in_use}
    assert not ApiKey.objects.filter(pk=long_revoked.pk).exists()


# --- Celery results ----------------------------------------------------------------------


def test_results_cleanup_deletes_exactly_the_expired_results(settings):
    settings.CELERY_RESULT_EXPIRES = 3600
    settings.OPS_MAINTENANCE_BATCH_SIZE = 2
    expired = [TaskResult.objects.create(task_id=str(uuid.uuid4())) for _ in range(3)]
    fresh = TaskResult.objects.create(task_id=str(uuid.uuid4()))
    # date_done is auto_now: set it past the expiry by an update.
    TaskResult.objects.filter(pk__in=[r.pk for r in expired]).update(date_done=ago(seconds=3601))
    TaskResult.objects.filter(pk=fresh.pk).update(date_done=ago(seconds=3500))
    old_group = GroupResult.objects.create(group_id=str(uuid.uuid4()))
    GroupResult.objects.filter(pk=old_group.pk).update(date_done=ago(days=1))
    new_group = GroupResult.objects.create(group_id=str(uuid.uuid4()))

    counts = maintenance.results_cleanup()

    assert list(TaskResult.objects.values_list("pk", flat=True)) == [fresh.pk]
    assert list(GroupResult.objects.values_list("pk", flat=True)) == [new_group.pk]
    assert untimed(counts) == {"deleted": 3, "groups_deleted": 1, "batches": 3}
    assert operations_tasks.cleanup_results()["deleted"] == 0  # nothing left; recorded
    assert MaintenanceRun.objects.filter(job="results_cleanup", outcome="done").exists()


# --- Orphaned files ----------------------------------------------------------------------


@pytest.fixture
def file_places(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.DOCUMENTS_TMP_DIR = tmp_path / "scratch"
    settings.DOCUMENTS_TMP_DIR.mkdir()
    return settings


def make_old(path: Path, *, hours: float = 2) -> None:
    stamp = (timezone.now() - timedelta(hours=hours)).timestamp()
    os.utime(path, (stamp, stamp))


def stored(folder: str, *, old: bool) -> Path:
    name = default_storage.save(f"documents/{folder}/source.txt", ContentFile(b"text"))
    path = Path(default_storage.path(name))
    if old:
        make_old(path)
    return path


def test_orphan_cleanup_removes_abandoned_scratch_and_files_of_missing_documents(file_places, user):
    scratch = file_places.DOCUMENTS_TMP_DIR
    abandoned = scratch / "abc-123"
    (abandoned / "pages").mkdir(parents=True)
    (abandoned / "pages" / "1.txt").write_text("x")
    make_old(abandoned)
    stray_file = scratch / "stray.txt"
    stray_file.write_text("x")
    make_old(stray_file)
    running = scratch / "def-456"  # a processing run working right now
    running.mkdir()

    document = Document.objects.create(owner=user, filename="a.txt")
    of_document = stored(str(document.pk), old=True)
    orphan = stored(str(uuid.uuid4()), old=True)
    in_flight = stored(str(uuid.uuid4()), old=False)  # an upload whose row is not committed
    not_ours = stored("not-a-document-id", old=True)

    counts = maintenance.orphan_files_cleanup()

    assert sorted(path.name for path in scratch.iterdir()) == ["def-456"]
    assert not orphan.exists() and not orphan.parent.exists()
    assert of_document.exists() and in_flight.exists() and not_ours.exists()
    assert counts == {"scratch_removed": 2, "orphan_folders_removed": 1, "orphan_files_removed": 1}


def test_orphan_cleanup_removes_a_bounded_number_per_run(file_places):
    file_places.OPS_MAINTENANCE_BATCH_SIZE = 2
    for n in range(3):
        stored(str(uuid.uuid4()), old=True)
        (file_places.DOCUMENTS_TMP_DIR / f"run-{n}").mkdir()
        make_old(file_places.DOCUMENTS_TMP_DIR / f"run-{n}")

    first = operations_tasks.cleanup_orphan_files()
    second = operations_tasks.cleanup_orphan_files()

    assert (first["orphan_folders_removed"], first["scratch_removed"]) == (2, 2)
    assert (second["orphan_folders_removed"], second["scratch_removed"]) == (1, 1)
    assert default_storage.listdir("documents") == ([], [])


def test_orphan_cleanup_with_nothing_stored_yet_does_nothing(file_places):
    file_places.DOCUMENTS_TMP_DIR = file_places.DOCUMENTS_TMP_DIR / "missing"

    assert maintenance.orphan_files_cleanup() == {
        "scratch_removed": 0,
        "orphan_folders_removed": 0,
        "orphan_files_removed": 0,
    }


# --- Reconciliation and dead letters go through the runner -------------------------------


def test_reconcile_task_requeues_a_dead_workers_task_and_is_recorded(queue_with_messages):
    queue = queue_with_messages(0)  # a queue no worker reads, empty
    stale = TaskRecordFactory(
        status=TaskStatus.RUNNING, attempts=1, heartbeat_at=ago(hours=1), queue=queue
    )

    result = operations_tasks.reconcile_tasks()

    assert result["outcome"] == "done" and result["requeued"] == 1
    stale.refresh_from_db()
    assert stale.status == TaskStatus.QUEUED and stale.dispatched_at is not None
    assert broker_queue_size(queue) == 1  # its message was sent again
    run = MaintenanceRun.objects.get(job="tasks_reconcile")
    assert run.counts["requeued"] == 1


def test_dead_letter_prune_deletes_exactly_the_entries_past_retention_in_batches(settings):
    settings.TASKS_DEAD_LETTER_RETENTION_DAYS = 30
    settings.OPS_MAINTENANCE_BATCH_SIZE = 2
    letters = [
        dead_letter(finished_task(status=TaskStatus.FAILED, days_ago=40), resolution=resolution)
        for resolution in ("open", "requeued", "discarded", "open")
    ]
    old, recent = letters[:3], letters[3]
    DeadLetter.objects.filter(pk__in=[letter.pk for letter in old]).update(created_at=ago(days=31))
    DeadLetter.objects.filter(pk=recent.pk).update(created_at=ago(days=29))

    assert untimed(operations_tasks.prune_dead_letters()) == {
        "outcome": "done",
        "deleted": 3,
        "batches": 2,
    }

    assert list(DeadLetter.objects.values_list("pk", flat=True)) == [recent.pk]
    assert TaskRecord.objects.count() == 4  # their tasks wait for their own retention
    run = MaintenanceRun.objects.get(job="dead_letters_prune")
    assert untimed(run.counts) == {"deleted": 3, "batches": 2}


OLD_TASK_NAMES = {
    "tasks_app.reconcile": "tasks_reconcile",
    "tasks_app.prune_dead_letters": "dead_letters_prune",
}


@pytest.mark.parametrize(("old_name", "job"), OLD_TASK_NAMES.items())
def test_a_message_under_a_tasks_old_name_still_runs_its_job(old_name, job):
    # What a worker does with a message sent by a beat that still has the old rows:
    # look the name up in its registry and run what it finds.
    result = current_app.tasks[old_name].apply().get()

    assert result["outcome"] == "done"
    assert MaintenanceRun.objects.get().job == job


def test_a_fresh_worker_process_registers_the_old_names_too():
    # A worker imports the tasks modules itself (autodiscovery): not this test's imports.
    registered = subprocess.run(
        [sys.executable, "-c", REGISTERED_TASKS],
        cwd=django_settings.BASE_DIR,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.split()

    assert {*OLD_TASK_NAMES, "operations.reconcile_tasks", "operations.prune_dead_letters"} <= {
        *registered
    }


REGISTERED_TASKS = """
import django
django.setup()
from config.celery import app
app.loader.import_default_modules()
print(*sorted(app.tasks))
"""


# --- Admin ---------------------------------------------------------------------------------


def test_admin_shows_runs_locks_and_snapshots_read_only(admin_client):
    maintenance_run(job="demo", work=lambda: {"deleted": 1})
    run = MaintenanceRun.objects.get()

    for model in ("maintenancerun", "maintenancelock", "healthsnapshot"):
        page = admin_client.get(f"/admin/operations/{model}/")
        assert page.status_code == 200, model
    assert admin_client.get("/admin/operations/maintenancerun/?outcome=done").status_code == 200
    assert admin_client.get("/admin/operations/healthsnapshot/?status=critical").status_code == 200
    detail = admin_client.get(f"/admin/operations/maintenancerun/{run.pk}/change/")
    assert detail.status_code == 200 and b'name="_save"' not in detail.content
    assert admin_client.get("/admin/operations/maintenancerun/add/").status_code == 403
